#!/usr/bin/python3
"""A Python client of the real coordd, on stubs generated from the proto at test time.

Usage: client_test.py COORDD_BINARY PROTO_FILE

Proves that the proto alone is enough to write a client in another language:
sessions kept alive by KeepAlive, a lock with a fencing token, an election with
a failover, and the release of everything when a session ends.
"""
import importlib
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

try:
    import grpc
except ImportError:
    sys.exit("client_test.py: python3-grpcio and python3-protobuf are needed (scripts/deps.sh test)")

LOCK = "py-lock"
ELECTION = "py-election"
EVENT_TIMEOUT = 10.0


class Failure(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failure(message)


def generate_stubs(proto_file, out_dir):
    """Generates coordd_pb2 and coordd_pb2_grpc with the protoc and plugin the C++ build uses."""
    # The import path of the generated modules follows the proto's package
    # folders (coordd/v1/), so protoc runs from the folder above them.
    expect(os.path.isfile(proto_file), f"{proto_file}: no such proto file")
    proto_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(proto_file))))
    plugin = shutil.which("grpc_python_plugin") or "/usr/bin/grpc_python_plugin"
    os.makedirs(out_dir)
    command = ["protoc", f"-I{proto_root}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
               f"--plugin=protoc-gen-grpc_python={plugin}", os.path.relpath(proto_file, proto_root)]
    result = subprocess.run(command, cwd=proto_root, capture_output=True, text=True)
    expect(result.returncode == 0, f"protoc failed ({' '.join(command)}):\n{result.stderr}")
    sys.path.insert(0, out_dir)
    return importlib.import_module("coordd.v1.coordd_pb2"), importlib.import_module("coordd.v1.coordd_pb2_grpc")


class Daemon:
    """The real coordd on its embedded coordinator, on a Unix socket in `directory`."""

    def __init__(self, binary, directory):
        self.socket = os.path.join(directory, "coordd.sock")
        self.address = "unix:" + self.socket
        self.log_path = os.path.join(directory, "coordd.err")
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen([binary, "--listen", self.address], stdout=subprocess.DEVNULL,
                                        stderr=self._log)

    def wait_socket(self, timeout=10.0):
        """Returns once the socket exists: a channel that connects earlier backs off for seconds."""
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.socket):
            expect(self.process.poll() is None, f"coordd exited with {self.process.returncode} before listening")
            expect(time.monotonic() < deadline, f"coordd did not create {self.socket} within {timeout:.0f}s")
            time.sleep(0.005)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def wait_ready(daemon, pb, admin, timeout=10.0):
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        expect(daemon.process.poll() is None, f"coordd exited with {daemon.process.returncode} before it was ready")
        try:
            if admin.Status(pb.DaemonStatusRequest(), timeout=1, wait_for_ready=True).ready:
                return
            last = "Admin.Status says not ready"
        except grpc.RpcError as e:
            last = f"{e.code().name}: {e.details()}"
        time.sleep(0.01)
    raise Failure(f"coordd not ready within {timeout:.0f}s: {last}")


class Session:
    """A client session whose KeepAlive stream pings every W/3 and queues what the daemon pushes."""

    def __init__(self, pb, stubs, owner):
        self.pb = pb
        self.owner = owner
        opened = stubs.sessions.Open(pb.OpenRequest(owner=owner, ttl_ms=10000), timeout=5)
        expect(len(opened.session_id) == 32, f"Open({owner}): session_id {opened.session_id!r} is not 32 hex digits")
        expect(opened.keepalive_window_ms > 0, f"Open({owner}): keepalive_window_ms is {opened.keepalive_window_ms}")
        self.id = opened.session_id
        self.window_s = opened.keepalive_window_ms / 1000
        self.events = queue.Queue()
        self._stop = threading.Event()
        self._call = stubs.sessions.KeepAlive(self._pings())
        threading.Thread(target=self._read, daemon=True).start()

    def _pings(self):
        ping_id = 1
        yield self.pb.KeepAliveRequest(session_id=self.id, ping_id=ping_id)
        while not self._stop.wait(self.window_s / 3):
            ping_id += 1
            yield self.pb.KeepAliveRequest(ping_id=ping_id)

    def _read(self):
        try:
            for response in self._call:
                self.events.put(response)
        except grpc.RpcError as e:
            self.events.put(e)

    def wait_for(self, what, predicate):
        """The first pushed message that satisfies `predicate`; fails after EVENT_TIMEOUT."""
        deadline = time.monotonic() + EVENT_TIMEOUT
        seen = []
        while True:
            try:
                message = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise Failure(f"{self.owner}: no {what} on KeepAlive within {EVENT_TIMEOUT:.0f}s; saw {seen}")
            if isinstance(message, grpc.RpcError):
                raise Failure(f"{self.owner}: KeepAlive broke ({message.code().name}) waiting for {what}; saw {seen}")
            if predicate(message):
                return message
            seen.append(message.WhichOneof("kind"))

    def stop(self):
        self._stop.set()
        self._call.cancel()


class Stubs:
    def __init__(self, pb_grpc, channel):
        self.sessions = pb_grpc.SessionsStub(channel)
        self.locks = pb_grpc.LocksStub(channel)
        self.elections = pb_grpc.ElectionsStub(channel)
        self.admin = pb_grpc.AdminStub(channel)


def run(pb, stubs):
    status_name = pb.CandidateStatus.Name
    lock_name = pb.LockState.Name

    alpha = Session(pb, stubs, "py-alpha")
    beta = Session(pb, stubs, "py-beta")
    heartbeat = alpha.wait_for("heartbeat", lambda m: m.WhichOneof("kind") == "heartbeat").heartbeat
    expect(heartbeat.link == pb.LINK_STATE_CONNECTED,
           f"KeepAlive heartbeat: link is {pb.LinkState.Name(heartbeat.link)}, want LINK_STATE_CONNECTED")
    expect(heartbeat.lease_ms > 0, f"KeepAlive heartbeat: lease_ms is {heartbeat.lease_ms}, want > 0")

    got = stubs.locks.TryAcquire(pb.TryAcquireRequest(session_id=alpha.id, name=LOCK), timeout=5)
    expect(got.acquired, f"TryAcquire({LOCK}) by alpha: not acquired, holder {got.holder}")
    expect(got.fencing_token > 0, f"TryAcquire({LOCK}) by alpha: fencing_token is {got.fencing_token}")
    checked = stubs.locks.Check(pb.CheckRequest(session_id=alpha.id, name=LOCK), timeout=5)
    expect(checked.state == pb.LOCK_STATE_HELD, f"Check({LOCK}) by alpha: {lock_name(checked.state)}, want HELD")
    expect(checked.fencing_token == got.fencing_token,
           f"Check({LOCK}): token {checked.fencing_token}, TryAcquire gave {got.fencing_token}")

    refused = stubs.locks.TryAcquire(pb.TryAcquireRequest(session_id=beta.id, name=LOCK), timeout=5)
    expect(not refused.acquired, f"TryAcquire({LOCK}) by beta: acquired while alpha holds it")
    expect(refused.holder.owner == "py-alpha" and refused.holder.session_id == alpha.id[:16],
           f"TryAcquire({LOCK}) by beta: holder is {refused.holder.owner!r}/{refused.holder.session_id!r}, "
           f"want py-alpha/{alpha.id[:16]}")

    first = stubs.elections.Campaign(pb.CampaignRequest(session_id=alpha.id, election=ELECTION, value=b"alpha:1"),
                                     timeout=5)
    expect(first.status == pb.CANDIDATE_STATUS_PRIMARY and first.term > 0,
           f"Campaign({ELECTION}) by alpha: {status_name(first.status)} term {first.term}, want PRIMARY with a term")
    second = stubs.elections.Campaign(pb.CampaignRequest(session_id=beta.id, election=ELECTION, value=b"beta:1"),
                                      timeout=5)
    expect(second.status == pb.CANDIDATE_STATUS_SECONDARY,
           f"Campaign({ELECTION}) by beta: {status_name(second.status)}, want SECONDARY")

    latencies = []
    for _ in range(200):
        start = time.perf_counter()
        stubs.locks.Check(pb.CheckRequest(session_id=alpha.id, name=LOCK), timeout=5)
        latencies.append(time.perf_counter() - start)

    # Closing alpha must hand the election to beta and free the lock at once:
    # beta learns it from its own KeepAlive stream, not by polling.
    closed_at = time.monotonic()
    stubs.sessions.Close(pb.CloseRequest(session_id=alpha.id), timeout=5)
    promoted = beta.wait_for("election event PRIMARY",
                             lambda m: m.WhichOneof("kind") == "election" and m.election.election == ELECTION
                             and m.election.status == pb.CANDIDATE_STATUS_PRIMARY).election
    failover = time.monotonic() - closed_at
    expect(promoted.term > first.term, f"beta's term {promoted.term} is not above alpha's {first.term}")
    ended = alpha.wait_for("SessionEnded", lambda m: m.WhichOneof("kind") == "ended").ended
    expect(ended.reason, "alpha's SessionEnded has no reason")
    status = stubs.elections.Status(pb.StatusRequest(session_id=beta.id, election=ELECTION), timeout=5)
    expect(status.status == pb.CANDIDATE_STATUS_PRIMARY, f"Status({ELECTION}) by beta: {status_name(status.status)}")
    leader = stubs.elections.Leader(pb.LeaderRequest(election=ELECTION), timeout=5)
    expect(leader.has_leader and leader.owner.owner == "py-beta" and leader.value == b"beta:1",
           f"Leader({ELECTION}): {leader.owner.owner!r} value {leader.value!r}, want py-beta value b'beta:1'")

    taken = stubs.locks.TryAcquire(pb.TryAcquireRequest(session_id=beta.id, name=LOCK), timeout=5)
    expect(taken.acquired, f"TryAcquire({LOCK}) by beta after alpha closed: held by {taken.holder.owner!r}")
    expect(taken.fencing_token > got.fencing_token,
           f"fencing token {taken.fencing_token} after alpha's {got.fencing_token}: not strictly increasing")
    try:
        stubs.locks.Check(pb.CheckRequest(session_id=alpha.id, name=LOCK), timeout=5)
        raise Failure("Check by the closed session alpha: answered, want FAILED_PRECONDITION")
    except grpc.RpcError as e:
        expect(e.code() == grpc.StatusCode.FAILED_PRECONDITION,
               f"Check by the closed session alpha: {e.code().name}, want FAILED_PRECONDITION")

    alpha.stop()
    beta.stop()
    latencies.sort()
    print(f"[measure] Check over a Unix socket from Python: p50 {statistics.median(latencies) * 1e6:.0f} us, "
          f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1e6:.0f} us (200 calls)")
    print(f"[measure] Close of the primary's session to the secondary's PRIMARY event: {failover * 1e3:.1f} ms")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: client_test.py COORDD_BINARY PROTO_FILE")
    binary, proto_file = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="coordd-py-") as directory:
        daemon = None
        failure = None
        try:
            pb, pb_grpc = generate_stubs(proto_file, os.path.join(directory, "stubs"))
            daemon = Daemon(binary, directory)
            daemon.wait_socket()
            with grpc.insecure_channel(daemon.address) as channel:
                stubs = Stubs(pb_grpc, channel)
                wait_ready(daemon, pb, stubs.admin)
                run(pb, stubs)
        except Failure as e:
            failure = str(e)
        except OSError as e:
            failure = str(e)
        except grpc.RpcError as e:
            failure = f"unexpected {e.code().name}: {e.details()}"
        finally:
            if daemon:
                daemon.stop()
        if failure:
            print(f"FAIL: {failure}", file=sys.stderr)
            if daemon:
                print(f"--- coordd log ---\n{daemon.log()}", file=sys.stderr)
            return 1
    print("python client: 1 passed, 0 failed")
    return 0

if __name__ == "__main__":
    sys.exit(main())
