#!/usr/bin/env bash
# Installs what coordd needs to build, from Debian 12's packages; with the
# argument "test", also what its tests need; with "bench", what the benchmark
# drives (ZooKeeper, etcd); with "fuzz", clang and libFuzzer.
set -euo pipefail
packages=(
  cmake g++ make pkg-config ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev catch2 libyaml-cpp-dev nlohmann-json3-dev libzookeeper-mt-dev libssl-dev
)
if [ "${1:-}" = "test" ]; then
  # The integration tests run a real ZooKeeper and read its nodes with kazoo;
  # the fault suite partitions a daemon with network namespaces (iproute2);
  # the TLS tests make their certificates with openssl; the metrics tests
  # scrape with curl; the deployment test parses YAML; the Python client test
  # generates its stubs (grpc_python_plugin comes with protobuf-compiler-grpc).
  packages+=(zookeeper default-jre-headless python3-kazoo iproute2 openssl curl python3-yaml python3-grpcio
    python3-protobuf)
fi
if [ "${1:-}" = "bench" ]; then
  # coordd-bench starts its own ZooKeeper and etcd, and times etcdctl's and
  # a kazoo script's lock commands next to coordctl's.
  packages+=(zookeeper default-jre-headless etcd-server etcd-client python3-kazoo)
fi
if [ "${1:-}" = "fuzz" ]; then
  packages+=(clang libclang-rt-14-dev)
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
