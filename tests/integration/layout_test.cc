// What coordd writes in ZooKeeper, read by an independent client (kazoo),
// and a foreign node excluding coordd, as Replicante's coordinator would.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "cluster.h"
#include "kazoo.h"

using namespace coordd::e2e;

TEST_CASE("layout - kazoo reads coordd's nodes at Replicante's paths with Replicante's payloads",
          "[zookeeper][layout]") {
  ZooKeeper zk;
  auto daemon = zkDaemon(zk.address() + "/replicante");
  std::unique_ptr<coordd::Client> client;
  auto session = openSession(*daemon, client, "layout-check");
  auto got = session->tryLock("backup/nightly");
  REQUIRE(got.ok());
  REQUIRE(got->acquired());
  auto election = session->campaign("discovery", "10.0.0.7:8080");
  REQUIRE(election.ok());
  const std::string node_id = session->nodeId();

  std::string out;
  int code = Kazoo(zk.address())
                 .run(R"(
h = sha('backup/nightly')
data, stat = zk.get('/replicante/locks/%s/%s' % (h[:4], h))
lock = json.loads(data)
assert lock['name'] == 'backup/nightly', lock
assert lock['owner']['id'] == sys.argv[1], (lock, sys.argv)
print('lock owner', lock['owner']['id'])
assert stat.ephemeralOwner != 0
print('lock czxid', stat.czxid)
e = '/replicante/elections/' + sha('discovery')
assert json.loads(zk.get(e)[0])['name'] == 'discovery'
children = sorted(zk.get_children(e))
assert len(children) == 1 and children[0].startswith('candidate-') and len(children[0]) == len('candidate-') + 10, children
cand, cstat = zk.get(e + '/' + children[0])
owner = json.loads(cand)['owner']
print('candidate owner', owner['id'], owner['extra']['coordd.value'])
assert cstat.ephemeralOwner != 0
nodes = [b + '/' + n for b in zk.get_children('/replicante/nodes') for n in zk.get_children('/replicante/nodes/' + b)]
print('members', nodes)
for path in nodes:
    member = json.loads(zk.get('/replicante/nodes/' + path)[0])
    assert path.split('/')[0] == member['id'][:4]
)",
                      {node_id}, &out);
  INFO(out);
  REQUIRE(code == 0);
  CHECK(out.find("lock owner " + node_id) != std::string::npos);
  CHECK(out.find("lock czxid " + std::to_string(got->guard->token())) != std::string::npos);
  CHECK(out.find("candidate owner " + node_id + " 10.0.0.7:8080") != std::string::npos);
  CHECK(out.find(node_id.substr(0, 4) + "/" + node_id) != std::string::npos);
}

TEST_CASE("a foreign lock node (Replicante's coordinator) makes coordd refuse the lock and name its owner",
          "[zookeeper][layout]") {
  ZooKeeper zk;
  auto daemon = zkDaemon(zk.address() + "/replicante");
  std::string out;
  const std::string foreign = std::string(32, 'f');
  int code = Kazoo(zk.address())
                 .run(R"(
h = sha('shared-task')
zk.create('/replicante/locks/%s/%s' % (h[:4], h), json.dumps({'name': 'shared-task', 'owner': {'id': ')" +
                          foreign + R"(', 'extra': {}}}).encode(), makepath=True)
)",
                      {}, &out);
  INFO(out);
  REQUIRE(code == 0);
  auto refused = daemon->coordctl({"lock", "shared-task", "--", "true"});
  CHECK(refused.code == 75);
  CHECK(refused.err.find(foreign) != std::string::npos);
}

TEST_CASE("digest credentials with the creator ACL - clients without them cannot delete or change a lock or candidacy",
          "[zookeeper][layout]") {
  ZooKeeper zk;
  std::vector<std::string> args = {
      "--zookeeper", zk.address() + "/replicante", "--zookeeper-auth", "coordd:s3cret", "--zookeeper-acl", "creator"};
  Daemon d1(args);
  Daemon d2(args);
  auto holder = d1.startCoordctl({"lock", "guarded", "--", "sleep", "30"});
  auto candidate = d1.startCoordctl({"elect", "svc", "--", "sleep", "30"});
  REQUIRE(eventually([&] {
    return d1.coordctl({"locks", "info", "guarded"}).out.find("coordctl-lock") != std::string::npos &&
           d1.coordctl({"leader", "svc"}).code == 0;
  }));
  // The other daemon, with the same credentials, reads and respects it.
  CHECK(d2.coordctl({"lock", "guarded", "--", "true"}).code == 75);
  // The lock node and the candidate node, as coordd's credentials see them.
  std::string paths;
  REQUIRE(Kazoo(zk.address(), "coordd:s3cret")
              .run(R"(
h = sha('guarded')
e = '/replicante/elections/%s' % sha('svc')
print(' '.join(['/replicante/locks/%s/%s' % (h[:4], h)] + [e + '/' + c for c in zk.get_children(e)]))
)",
                   {}, &paths) == 0);
  const std::string script = R"(
from kazoo.exceptions import NoAuthError
for path in sys.argv[1].split():
    for what, act in (('deleted', lambda: zk.delete(path)), ('changed', lambda: zk.set(path, b'x'))):
        try:
            act()
            print(what)
        except NoAuthError:
            print('refused')
)";
  std::string out;
  REQUIRE(Kazoo(zk.address()).run(script, {paths.substr(0, paths.find('\n'))}, &out) == 0);
  CHECK(std::count(out.begin(), out.end(), '\n') == 4);  // 2 nodes x (delete, set)
  CHECK(out.find("deleted") == std::string::npos);
  CHECK(out.find("changed") == std::string::npos);
  CHECK(holder->running());
  CHECK(candidate->running());
  // The credentials show nowhere.
  CHECK(d1.log().find("s3cret") == std::string::npos);
  CHECK(d1.coordctl({"status", "--json"}).out.find("s3cret") == std::string::npos);
  // With them, the lock node goes.
  REQUIRE(Kazoo(zk.address(), "coordd:s3cret")
              .run("zk.delete(sys.argv[1].split()[0])\nprint('deleted')", {paths.substr(0, paths.find('\n'))}, &out) ==
          0);
  CHECK(out.find("deleted") != std::string::npos);
}

TEST_CASE("the watch session holds no node - a foreign delete reaches the holder through it as LOST",
          "[zookeeper][layout]") {
  ZooKeeper zk;
  auto daemon = zkDaemon(zk.address() + "/replicante");
  auto status = daemon->coordctl({"status", "--json"});
  REQUIRE(status.code == 0);
  const auto sessions = nlohmann::json::parse(status.out);
  const std::string first = sessions.at("coordinator_session");
  const std::string watcher = sessions.at("watch_session");
  INFO(status.out);
  REQUIRE(!first.empty());
  REQUIRE(!watcher.empty());
  REQUIRE(first != watcher);

  std::unique_ptr<coordd::Client> client;
  auto session = openSession(*daemon, client, "watch-session-check");
  auto got = session->tryLock("report/daily");
  REQUIRE(got.ok());
  REQUIRE(got->acquired());
  REQUIRE(session->campaign("discovery", "10.0.0.7:8080").ok());
  // Every ephemeral node coordd made (lock, candidate, member record) is the
  // first session's; then a foreign client deletes the lock node.
  std::string out;
  int code = Kazoo(zk.address())
                 .run(R"(
owners = set()
def walk(path):
    data, stat = zk.get(path)
    if stat.ephemeralOwner:
        owners.add('0x%x' % stat.ephemeralOwner)
    for child in zk.get_children(path):
        walk(path + '/' + child)
walk('/replicante')
print('owners', sorted(owners))
assert owners == {sys.argv[1]}, (owners, sys.argv[1])
h = sha('report/daily')
zk.delete('/replicante/locks/%s/%s' % (h[:4], h))
)",
                      {first}, &out);
  INFO(out);
  REQUIRE(code == 0);
  CHECK(eventually([&] { return got->guard->state() == coordd::LockState::kLost; }));
  CHECK(!got->guard->held());
}
