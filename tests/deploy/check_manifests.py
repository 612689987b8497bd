#!/usr/bin/python3
"""Checks the deployment files in docker/ against the code they deploy.

Usage: check_manifests.py COORDD COORDCTL SOURCE_DIR BINARY_DIR

Nothing here runs Docker or Kubernetes; what can drift silently is checked
with the real binaries instead: every YAML parses; every coordd flag and
coordctl command used exists; every coordd configuration (the image's, the
ConfigMap's, compose's and systemd's, each with its flags) passes
`coordd --check-config`; and the paths and ports the files rely on agree
with each other and with the build.
"""
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

import yaml

# Present in debian:12-slim: the image need not install them.
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6"}
# Sanitizer builds run this test too; the image is built without them.
SANITIZER_LIBRARY = re.compile(r"^lib(a|ub|t|l)san\.")


class Checker:
    def __init__(self, source_dir):
        self.source_dir = source_dir
        self.passed = 0
        self.failures = []

    def check(self, condition, path, field, message):
        """Counts a check; on failure records "FILE: FIELD: MESSAGE". Returns the condition."""
        if condition:
            self.passed += 1
        else:
            where = os.path.relpath(path, self.source_dir) if os.path.isabs(path) else path
            self.failures.append(f"{where}: {field}: {message}" if field else f"{where}: {message}")
        return condition


def run(argv):
    result = subprocess.run(argv, capture_output=True, text=True)
    return result.returncode, result.stdout, result.stderr


def flags_of(argv):
    """The --flags of a command line, up to a `--` that ends the options."""
    flags = []
    for token in argv:
        if token == "--":
            break
        if token.startswith("--"):
            flags.append(token.split("=", 1)[0])
    return flags


def seconds(value):
    """A coordd duration ("10s", "1m", "500ms") or a number of seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(value).strip())
    if not match:
        return None
    return float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def port_of(address):
    host, _, port = str(address).rpartition(":")
    return host, int(port) if port.isdigit() else None


def without_config(argv):
    """argv[1:] without `--config FILE`: the checks pass their own file."""
    args = []
    skip = False
    for token in argv[1:]:
        if skip:
            skip = False
        elif token == "--config":
            skip = True
        else:
            args.append(token)
    return args


def overlay(config, args, flag_keys):
    """config with the scalar and list flags of args applied, as coordd would."""
    given = {}
    for flag, value in zip(args, args[1:]):
        if flag in flag_keys:
            given.setdefault(flag_keys[flag], []).append(value)
    for key, values in given.items():
        *parents, leaf = key.split(".")
        node = config
        for parent in parents:
            node = node.setdefault(parent, {})
        if not isinstance(node.get(leaf), dict):
            node[leaf] = values if isinstance(node.get(leaf), list) else values[-1]
    return config


def unix_listeners(config):
    return [a[len("unix:"):] for a in config.get("listen") or [] if str(a).startswith("unix:")]


class Binaries:
    """What the real coordd and coordctl accept."""

    def __init__(self, coordd, coordctl):
        self.coordd = coordd
        self.coordctl = coordctl
        code, out, err = run([coordd, "--help"])
        if code != 0:
            sys.exit(f"check_manifests: {coordd} --help exited {code}: {err}")
        self.coordd_flags = set(re.findall(r"^\s+(--[a-z][a-z0-9-]*)", out, re.M))
        # "--listen VALUE  ...  [listen]": the config key each flag sets.
        self.flag_keys = dict(re.findall(r"^\s+(--[a-z][a-z0-9-]*)\s.*\[([a-z_.]+)\]\s*$", out, re.M))
        code, out, err = run([coordctl, "--help"])
        if code != 0:
            sys.exit(f"check_manifests: {coordctl} --help exited {code}: {err}")
        commands = out.split("Commands:", 1)[1].split("\n\n", 1)[0] if "Commands:" in out else ""
        self.coordctl_commands = set(re.findall(r"^\s+([a-z-]+)\s", commands, re.M))
        self._command_help = {}

    def command_help(self, command):
        if command not in self._command_help:
            self._command_help[command] = run([self.coordctl, command, "--help"])[1]
        return self._command_help[command]

    def check_config(self, config_text, args):
        """Runs `coordd --config FILE ARGS --check-config`: (exit code, effective config or None, stderr)."""
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write(config_text)
            f.flush()
            code, out, err = run([self.coordd, "--config", f.name, *args, "--check-config"])
            err = err.replace(f.name + ": ", "")
        effective = None
        if code == 0 and "configuration is valid:" in out:
            effective = yaml.safe_load(out.split("configuration is valid:", 1)[1])
        return code, effective, err.strip()


class Deploy:
    """The checks, one method per deployment file."""

    def __init__(self, checker, binaries, source_dir, binary_dir, check_packages=True):
        self.check_packages = check_packages
        self.c = checker
        self.bin = binaries
        self.source_dir = source_dir
        self.binary_dir = binary_dir
        self.docker_dir = os.path.join(source_dir, "docker")
        self.image = None  # what the Dockerfile's final stage provides

    # --- shared ---------------------------------------------------------

    def coordd_flags(self, path, field, argv):
        for flag in flags_of(argv):
            self.c.check(flag in self.bin.coordd_flags, path, field, f"coordd has no flag {flag} (coordd --help)")

    def coordctl_command(self, path, field, argv):
        """argv starts with coordctl: its command must exist, and so must the options given to it."""
        rest = list(argv[1:])
        while rest and rest[0] in ("--json", "--address"):
            rest = rest[2:] if rest[0] == "--address" else rest[1:]
        if not self.c.check(rest and rest[0] in self.bin.coordctl_commands, path, field,
                            f"coordctl has no command {rest[0] if rest else '(none)'!r} (coordctl --help)"):
            return
        help_text = self.bin.command_help(rest[0])
        for flag in flags_of(rest[1:]):
            self.c.check(re.search(rf"(^|\s){re.escape(flag)}\b", help_text), path, field,
                         f"coordctl {rest[0]} has no option {flag}")

    def validate_config(self, path, field, config_text, args):
        """The effective config (file + flags) as coordd prints it. If coordd refuses it, an
        approximation, so that the checks below still report what else is wrong."""
        code, effective, err = self.bin.check_config(config_text, args)
        command = shlex.join(args + ["--check-config"])
        if self.c.check(code == 0, path, field, f"coordd {command} exited {code}: {err}"):
            return effective
        return overlay(yaml.safe_load(config_text) or {}, args, self.bin.flag_keys)

    def shutdown_bound(self, path, field, grace, config):
        timeout = seconds(config.get("shutdown_timeout", "10s"))
        self.c.check(seconds(grace) is not None and seconds(grace) > timeout, path, field,
                     f"{grace} is not above coordd's shutdown_timeout ({config.get('shutdown_timeout', '10s')})")

    def container_argv(self, entrypoint, cmd, command, args):
        """What a container runs: Kubernetes' command/args and compose's entrypoint/command
        both replace the image's ENTRYPOINT/CMD, and a new entrypoint drops CMD."""
        if command:
            return list(command) + list(args or [])
        return list(entrypoint) + list(args if args else cmd)

    def image_argv(self, command, args):
        return self.container_argv(self.image["entrypoint"], self.image["cmd"], command, args)

    # --- YAML -----------------------------------------------------------

    def load_yaml(self):
        documents = {}
        for path in sorted(glob.glob(os.path.join(self.docker_dir, "**", "*.y*ml"), recursive=True)):
            try:
                with open(path) as f:
                    documents[path] = [d for d in yaml.safe_load_all(f) if d is not None]
                self.c.check(True, path, "", "")
            except yaml.YAMLError as e:
                self.c.check(False, path, "", f"does not parse: {e}")
        return documents

    # --- Dockerfile -------------------------------------------------------

    def dockerfile(self):
        path = os.path.join(self.docker_dir, "Dockerfile")
        stages = parse_dockerfile(path)
        if not self.c.check(len(stages) >= 2, path, "FROM", "want a build stage and a final stage"):
            return
        build, final = stages[0], stages[-1]
        self.c.check(build["base"] == "debian:12", path, "FROM", f"build stage is {build['base']}, want debian:12")
        self.c.check(final["base"] == "debian:12-slim", path, "FROM",
                     f"final stage is {final['base']}, want debian:12-slim")

        # Sources: everything copied from the context exists, and the build
        # stage has every folder the top-level CMakeLists.txt adds.
        copied = set()
        for stage in stages:
            for args in stage["COPY"]:
                if args and args[0].startswith("--from="):
                    continue
                for source in args[:-1]:
                    self.c.check(os.path.exists(os.path.join(self.source_dir, source)), path, "COPY",
                                 f"{source} does not exist in the repository")
                    copied.add(source.rstrip("/"))
        with open(os.path.join(self.source_dir, "CMakeLists.txt")) as f:
            for folder in re.findall(r"^add_subdirectory\((\w+)\)", f.read(), re.M):
                self.c.check(folder in copied, path, "COPY",
                             f"the build stage lacks {folder}/, which CMakeLists.txt adds")

        # The binaries copied out of the build stage are where CMake puts them.
        build_runs = " ".join(build["RUN"])
        build_dir = re.search(r"cmake -S \S+ -B (\S+)", build_runs)
        targets = re.search(r"--target ([\w ]+)", build_runs)
        if not self.c.check(build_dir and targets, path, "RUN", "no `cmake -S SRC -B DIR` and `--target` in build"):
            return
        built_from = set()
        for args in final["COPY"]:
            if args and args[0] == f"--from={build['name']}":
                built_from.update(os.path.relpath(s, build_dir.group(1)) for s in args[1:-1])
        for target, binary in (("coordd", self.bin.coordd), ("coordctl", self.bin.coordctl)):
            self.c.check(target in targets.group(1).split(), path, "RUN", f"cmake --build does not build {target}")
            where = os.path.relpath(binary, self.binary_dir)
            self.c.check(where in built_from, path, "COPY --from",
                         f"does not copy {build_dir.group(1)}/{where}, where CMake builds {target}")

        # The image's configuration: the copied file with the sed edits applied.
        entrypoint = final["ENTRYPOINT"]
        if not self.c.check(entrypoint and os.path.basename(entrypoint[0]) == "coordd", path, "ENTRYPOINT",
                            f"{entrypoint} does not run coordd (exec form)"):
            return
        argv = self.container_argv(entrypoint, final["CMD"], None, None)
        self.coordd_flags(path, "ENTRYPOINT", argv)
        config_path = argv[argv.index("--config") + 1] if "--config" in argv else None
        if not self.c.check(config_path, path, "ENTRYPOINT", "no --config"):
            return
        sources = [a[0] for a in final["COPY"] if len(a) == 2 and a[1] == config_path]
        if not self.c.check(sources, path, "COPY", f"nothing copies {config_path}, which ENTRYPOINT reads") or \
                not os.path.isfile(os.path.join(self.source_dir, sources[0])):
            return
        with open(os.path.join(self.source_dir, sources[0])) as f:
            config_text = f.read()
        for pattern, replacement in re.findall(rf"sed -i 's\|(.*?)\|(.*?)\|' {re.escape(config_path)}",
                                                " ".join(final["RUN"])):
            edited = re.sub(pattern, lambda _: replacement, config_text, flags=re.M)
            self.c.check(edited != config_text, path, "RUN sed", f"s|{pattern}|...| changes nothing in {sources[0]}")
            config_text = edited
        args = without_config(argv)
        config = self.validate_config(path, "ENTRYPOINT", config_text, args)

        # The socket: where COORDD_ADDRESS points, in a volume the user owns.
        address = final["ENV"].get("COORDD_ADDRESS")
        listeners = unix_listeners(config)
        self.c.check(address and address[len("unix:"):] in listeners, path, "ENV COORDD_ADDRESS",
                     f"{address} is not among the image config's listen {config.get('listen')}")
        socket_dir = os.path.dirname(listeners[0]) if listeners else None
        self.c.check(socket_dir in final["VOLUME"], path, "VOLUME", f"{final['VOLUME']} lacks {socket_dir}")
        user = final["USER"].split(":")[0] if final["USER"] else ""
        self.c.check(user.isdigit() and user != "0", path, "USER",
                     f"{user!r}: want a numeric non-root uid (Kubernetes runAsNonRoot checks it)")
        runs = " ".join(final["RUN"])
        name = re.search(rf"useradd\b[^&]*--uid {user}\b[^&]*\s(\S+)\s*(&&|$)", runs)
        self.c.check(name and re.search(rf"install -d -o {name.group(1)}\b[^&]*\s{socket_dir}\b", runs),
                     path, "RUN", f"{socket_dir} is not created owned by uid {user}")
        healthcheck = final["HEALTHCHECK"]
        if self.c.check(healthcheck and os.path.basename(healthcheck[0]) == "coordctl", path, "HEALTHCHECK",
                        f"{healthcheck}: want CMD [\"coordctl\", ...]"):
            self.coordctl_command(path, "HEALTHCHECK", healthcheck)

        if self.check_packages:
            self.runtime_packages(path, final)
        else:
            print("check_manifests: runtime packages not checked: a sanitizer build links other libraries")
        self.image = {"entrypoint": entrypoint, "cmd": final["CMD"], "config_path": config_path,
                      "config_text": config_text}

    def runtime_packages(self, path, final):
        """The final stage installs exactly the packages whose libraries the binaries link."""
        installs = re.search(r"apt-get install ([^&]*)", " ".join(final["RUN"]))
        listed = {w for w in installs.group(1).split() if not w.startswith("-")} if installs else set()
        files = {}  # library -> its file, for the libraries the binaries name themselves
        for binary in (self.bin.coordd, self.bin.coordctl):
            code, dynamic, err = run(["objdump", "-p", binary])
            code_ldd, resolved, _ = run(["ldd", binary])
            if not self.c.check(code == 0 and code_ldd == 0, path, "", f"objdump/ldd failed on {binary}: {err}"):
                return
            where = dict(re.findall(r"^\s*(\S+) => (/\S+)", resolved, re.M))
            # The loader, named by a binary that links part of libc statically.
            where.update({os.path.basename(p): p for p in re.findall(r"^\s*(/\S+) \(0x", resolved, re.M)})
            for library in re.findall(r"^\s*NEEDED\s+(\S+)", dynamic, re.M):
                if not SANITIZER_LIBRARY.match(library):
                    files[library] = where.get(library, library)
        # dpkg knows a file by the path its package installed: with merged
        # /usr that is either the path ldd found or the real one.
        paths = set(files.values()) | {os.path.realpath(f) for f in files.values()}
        owners = {}
        for line in run(["dpkg", "-S", *sorted(paths)])[1].splitlines():
            package, _, file = line.partition(": ")
            owners[file] = package.split(":")[0]
        needed = {}
        for library, file in sorted(files.items()):
            package = owners.get(file) or owners.get(os.path.realpath(file))
            if self.c.check(package, path, "apt-get install", f"no Debian package owns {library} ({file})"):
                needed[package] = library
        for package, library in sorted(needed.items()):
            if package not in BASE_IMAGE_PACKAGES:
                self.c.check(package in listed, path, "apt-get install",
                             f"final stage lacks {package}, which provides {library}")
        for package in sorted(listed - set(needed)):
            self.c.check(False, path, "apt-get install", f"{package}: neither binary links a library of it")

    # --- Kubernetes -------------------------------------------------------

    def kubernetes(self, documents):
        folder = os.path.join(self.docker_dir, "kubernetes")
        manifests = {p: d for p, d in documents.items() if p.startswith(folder + os.sep)}
        kustomization = os.path.join(folder, "kustomization.yaml")
        if kustomization in manifests:
            resources = manifests[kustomization][0].get("resources", [])
            for resource in resources:
                self.c.check(os.path.join(folder, resource) in manifests, kustomization, "resources",
                             f"{resource} does not exist")
            for p in manifests:
                self.c.check(p == kustomization or os.path.relpath(p, folder) in resources, kustomization,
                             "resources", f"does not list {os.path.relpath(p, folder)}")
        objects = [(p, d) for p, docs in manifests.items() for d in docs if isinstance(d, dict) and "kind" in d]
        configmaps = {d["metadata"]["name"]: (p, d) for p, d in objects if d["kind"] == "ConfigMap"}
        for p, d in objects:
            if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
                self.workload(p, d, configmaps)

    def workload(self, path, workload, configmaps):
        what = f"{workload['kind']}/{workload['metadata']['name']}"
        template = workload["spec"]["template"]
        pod = template["spec"]
        containers = [("initContainers", c) for c in pod.get("initContainers", [])] + \
                     [("containers", c) for c in pod.get("containers", [])]
        sidecars = [(k, c) for k, c in containers if str(c.get("image", "")).split(":")[0].endswith("coordd")]
        if not self.c.check(len(sidecars) == 1, path, what, "want exactly one coordd container") or not self.image:
            return
        kind, sidecar = sidecars[0]
        field = f"{what} {kind}[{sidecar['name']}]"
        argv = self.image_argv(sidecar.get("command"), sidecar.get("args"))
        self.coordd_flags(path, f"{field}.args", argv)
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = {m["mountPath"]: m["name"] for m in sidecar.get("volumeMounts", [])}

        # The config: a ConfigMap key mounted where the image reads it.
        config_path = argv[argv.index("--config") + 1] if "--config" in argv[:-1] else self.image["config_path"]
        config_dir, config_file = os.path.split(config_path)
        volume = volumes.get(mounts.get(config_dir), {})
        source = volume.get("configMap")
        if not self.c.check(source, path, f"{field}.volumeMounts",
                            f"no ConfigMap mounted at {config_dir}, where the image reads {config_file}"):
            return
        items = {i["path"]: i["key"] for i in source.get("items", [])}
        key = items.get(config_file, config_file if not items else None)
        cm_path, configmap = configmaps.get(source["name"], (None, None))
        if not self.c.check(configmap and key in configmap.get("data", {}), path, f"volumes[{volume['name']}]",
                            f"ConfigMap {source['name']} with key {key} is not in docker/kubernetes"):
            return
        args = without_config(argv)
        cm_field = f"ConfigMap/{source['name']} data.{key}"
        config = self.validate_config(cm_path, cm_field, configmap["data"][key], args)

        # The socket: in an emptyDir that every client container mounts at the same path.
        listeners = unix_listeners(config)
        if not self.c.check(listeners, cm_path, f"{cm_field} listen", "no unix: listener for the pod's clients"):
            return
        socket = listeners[0]
        socket_volume = mounts.get(os.path.dirname(socket))
        self.c.check(socket_volume and "emptyDir" in volumes.get(socket_volume, {}), path, f"{field}.volumeMounts",
                     f"no emptyDir mounted at {os.path.dirname(socket)}, where the config puts the socket")
        for k, container in containers:
            if container is sidecar:
                continue
            where = f"{what} {k}[{container['name']}]"
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            if "COORDD_ADDRESS" in env:
                self.c.check(env["COORDD_ADDRESS"] == f"unix:{socket}", path, f"{where}.env.COORDD_ADDRESS",
                             f"{env['COORDD_ADDRESS']}, but coordd listens on unix:{socket}")
                theirs = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
                self.c.check(theirs.get(os.path.dirname(socket)) == socket_volume, path, f"{where}.volumeMounts",
                             f"does not mount {socket_volume} at {os.path.dirname(socket)}")
            command = (container.get("command") or []) + (container.get("args") or [])
            if command and os.path.basename(command[0]) == "coordctl":
                self.coordctl_command(path, f"{where}.command", command)
        group = str(config.get("socket_group") or "")
        if group:
            self.c.check(group == str(pod.get("securityContext", {}).get("fsGroup")), path,
                         f"{what} securityContext.fsGroup",
                         f"is not the socket_group {group}: the other containers could not connect")

        # Probes and scraping on the ports coordd serves them on.
        http = (config.get("http") or {}).get("listen", "")
        health = (config.get("health") or {}).get("listen", "")
        for name, address in (("http.listen", http), ("health.listen", health)):
            host, port = port_of(address)
            if self.c.check(port, cm_path, f"{cm_field} {name}", f"{address!r}: want host:port"):
                self.c.check(host not in ("127.0.0.1", "localhost", "[::1]"), cm_path, f"{cm_field} {name}",
                             f"{address}: the kubelet and Prometheus cannot reach a loopback address")
        for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = sidecar.get(probe_name)
            if probe and "httpGet" in probe:
                self.c.check(probe["httpGet"].get("port") == port_of(http)[1], path, f"{field}.{probe_name}",
                             f"httpGet port {probe['httpGet'].get('port')}, but http.listen is {http!r}")
            if probe and "grpc" in probe:
                self.c.check(probe["grpc"].get("port") == port_of(health)[1], path, f"{field}.{probe_name}",
                             f"grpc port {probe['grpc'].get('port')}, but health.listen is {health!r}")
        self.c.check("grpc" in sidecar.get("readinessProbe", {}), path, f"{field}.readinessProbe",
                     "want the gRPC health probe (health.listen)")
        self.c.check(sidecar.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", path,
                     f"{field}.livenessProbe", "want httpGet /healthz")
        annotations = template.get("metadata", {}).get("annotations", {})
        self.c.check(annotations.get("prometheus.io/scrape") == "true", path, f"{what} annotations",
                     "prometheus.io/scrape is not \"true\"")
        self.c.check(annotations.get("prometheus.io/port") == str(port_of(http)[1]), path, f"{what} annotations",
                     f"prometheus.io/port {annotations.get('prometheus.io/port')}, but http.listen is {http!r}")
        self.c.check(annotations.get("prometheus.io/path") == "/metrics", path, f"{what} annotations",
                     "prometheus.io/path is not /metrics")
        self.shutdown_bound(path, f"{what} terminationGracePeriodSeconds",
                            pod.get("terminationGracePeriodSeconds", 30), config)

    # --- compose ------------------------------------------------------------

    def compose(self, documents):
        path = os.path.join(self.docker_dir, "compose.yaml")
        if not self.c.check(documents.get(path), path, "", "missing or empty") or not self.image:
            return
        compose = documents[path][0]
        services = compose.get("services", {})
        zookeepers = {}
        for name, service in services.items():
            env = service.get("environment") or {}
            if "ZOO_MY_ID" in env:
                zookeepers[service.get("hostname", name)] = (str(env["ZOO_MY_ID"]), env.get("ZOO_SERVERS", ""))
        ids = [i for i, _ in zookeepers.values()]
        self.c.check(len(zookeepers) == 3 and len(set(ids)) == 3, path, "services",
                     f"want 3 ZooKeeper servers with distinct ZOO_MY_ID, got {ids}")
        client_ports = set()
        for host, (my_id, servers) in zookeepers.items():
            # server.N=HOST:PEER_PORT:ELECTION_PORT;[CLIENT_HOST:]CLIENT_PORT
            entries = re.findall(r"server\.(\d+)=([^:\s]+):\d+:\d+(?:;(?:[^:\s]*:)?(\d+))?", servers)
            listed = {i: h for i, h, _ in entries}
            client_ports.update(p for _, _, p in entries if p)
            self.c.check(listed == {i: h for h, (i, _) in zookeepers.items()}, path,
                         f"services.{host}.environment.ZOO_SERVERS",
                         f"{servers!r} does not name every server by its ZOO_MY_ID and hostname")

        volumes = compose.get("volumes") or {}
        daemons = {n: s for n, s in services.items() if "build" in s or str(s.get("image", "")).startswith("coordd")}
        self.c.check(len(daemons) == 2, path, "services", f"want two coordd daemons, got {sorted(daemons)}")
        for name, service in daemons.items():
            field = f"services.{name}"
            build = service.get("build") or {}
            dockerfile = os.path.normpath(os.path.join(self.docker_dir, build.get("context", "."),
                                                       build.get("dockerfile", "Dockerfile")))
            self.c.check(dockerfile == os.path.join(self.docker_dir, "Dockerfile"), path, f"{field}.build",
                         f"builds {os.path.relpath(dockerfile, self.source_dir)}, not docker/Dockerfile")
            entrypoint, command = service.get("entrypoint"), service.get("command")
            argv = self.image_argv(shlex.split(entrypoint) if isinstance(entrypoint, str) else entrypoint,
                                   shlex.split(command) if isinstance(command, str) else command)
            self.coordd_flags(path, f"{field}.command", argv)
            args = without_config(argv)
            config = self.validate_config(path, f"{field}.command", self.image["config_text"], args)
            ensemble = (config.get("zookeeper") or {}).get("ensemble", "")
            hosts, _, chroot = ensemble.partition("/")
            self.c.check(chroot, path, f"{field}.command", f"--zookeeper {ensemble!r} has no chroot")
            for server in filter(None, hosts.split(",")):
                host, port = port_of(server)
                self.c.check(host in zookeepers and str(port) in client_ports, path, f"{field}.command",
                             f"{server} is not a ZooKeeper server's client address in this file")
            sockets = unix_listeners(config)
            mounted = {str(v).split(":")[1]: str(v).split(":")[0] for v in service.get("volumes", [])}
            socket_dir = os.path.dirname(sockets[0]) if sockets else None
            self.c.check(mounted.get(socket_dir) in volumes, path, f"{field}.volumes",
                         f"no named volume at {socket_dir}, where coordd puts its socket")
            self.shutdown_bound(path, f"{field}.stop_grace_period", service.get("stop_grace_period", "10s"), config)
        sockets = [str(v).split(":")[0] for s in daemons.values() for v in s.get("volumes", [])]
        self.c.check(len(sockets) == len(set(sockets)), path, "services",
                     f"the daemons share a socket volume: {sockets}")

    # --- systemd ------------------------------------------------------------

    def systemd(self):
        path = os.path.join(self.docker_dir, "systemd", "coordd.service")
        unit = parse_unit(path)
        service = unit.get("Service", {})
        exec_start = shlex.split(service.get("ExecStart", [""])[-1])
        if not self.c.check(exec_start and os.path.basename(exec_start[0]) == "coordd", path, "ExecStart",
                            f"{exec_start} does not run coordd"):
            return
        self.coordd_flags(path, "ExecStart", exec_start)
        self.c.check("--config" in exec_start, path, "ExecStart", "no --config")
        # A host's /etc/coordd/coordd.yaml starts as the documented example.
        with open(os.path.join(self.source_dir, "config", "coordd.yaml")) as f:
            example = f.read()
        args = without_config(exec_start)
        config = self.validate_config(path, "ExecStart", example, args)
        runtime = service.get("RuntimeDirectory", [""])[-1]
        sockets = unix_listeners(config)
        self.c.check(runtime and sockets and os.path.dirname(sockets[0]) == f"/run/{runtime}", path, "ExecStart",
                     f"socket {sockets[:1]} is not in RuntimeDirectory /run/{runtime}"
                     + (" (PrivateTmp hides /tmp from clients)" if sockets and sockets[0].startswith("/tmp/") else ""))
        self.c.check(service.get("Type", ["simple"])[-1] == "simple", path, "Type",
                     "coordd does not notify systemd: want simple")
        self.c.check(service.get("User", ["root"])[-1] not in ("root", "0"), path, "User", "runs as root")
        self.shutdown_bound(path, "TimeoutStopSec", service.get("TimeoutStopSec", ["90s"])[-1], config)


def parse_dockerfile(path):
    """Stages as dicts: name, base, and per instruction its arguments (exec-form JSON parsed)."""
    with open(path) as f:
        text = f.read()
    logical = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    stages = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append({"name": name, "base": words[0], "RUN": [], "COPY": [], "ENV": {}, "VOLUME": [],
                           "ENTRYPOINT": [], "CMD": [], "HEALTHCHECK": [], "USER": ""})
        elif not stages:
            continue
        elif keyword == "RUN":
            stages[-1]["RUN"].append(rest)
        elif keyword == "COPY":
            stages[-1]["COPY"].append(rest.split())
        elif keyword == "ENV":
            stages[-1]["ENV"].update(dict(w.split("=", 1) for w in shlex.split(rest) if "=" in w))
        elif keyword == "VOLUME":
            stages[-1]["VOLUME"] += json.loads(rest) if rest.startswith("[") else rest.split()
        elif keyword in ("ENTRYPOINT", "CMD"):
            stages[-1][keyword] = json.loads(rest) if rest.startswith("[") else ["/bin/sh", "-c", rest]
        elif keyword == "HEALTHCHECK":
            command = f" {rest}".split(" CMD ", 1)[1].strip() if " CMD " in f" {rest}" else ""
            stages[-1]["HEALTHCHECK"] = json.loads(command) if command.startswith("[") else shlex.split(command)
        elif keyword == "USER":
            stages[-1]["USER"] = rest.strip()
    return stages


def parse_unit(path):
    """A systemd unit: {section: {key: [values in order]}}."""
    sections = {}
    section = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("[") and line.endswith("]"):
                section = sections.setdefault(line[1:-1], {})
            elif "=" in line and section is not None:
                key, value = line.split("=", 1)
                section.setdefault(key.strip(), []).append(value.strip())
    return sections


def main():
    # A sanitizer build links other libraries than the image's Release build.
    sanitized = "--sanitized" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--sanitized"]
    if len(args) != 4:
        sys.exit("usage: check_manifests.py COORDD COORDCTL SOURCE_DIR BINARY_DIR [--sanitized]")
    coordd, coordctl, source_dir, binary_dir = (os.path.abspath(a) for a in args)
    checker = Checker(source_dir)
    deploy = Deploy(checker, Binaries(coordd, coordctl), source_dir, binary_dir, check_packages=not sanitized)
    documents = deploy.load_yaml()
    deploy.dockerfile()
    deploy.kubernetes(documents)
    deploy.compose(documents)
    deploy.systemd()
    # The documented example must stay valid on its own too.
    example = os.path.join(source_dir, "config", "coordd.yaml")
    with open(example) as f:
        deploy.validate_config(example, "", f.read(), [])
    for failure in checker.failures:
        print(f"FAIL {failure}")
    print(f"check_manifests: {checker.passed} passed, {len(checker.failures)} failed")
    return 1 if checker.failures else 0


if __name__ == "__main__":
    sys.exit(main())
