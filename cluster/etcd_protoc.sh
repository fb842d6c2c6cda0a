#!/bin/sh
# Generates the C++ of etcd's v3 API (gRPC) from the .proto files scripts/setup-debian.sh takes
# from Debian's packages: etcd_protoc.sh PROTOC GRPC_CPP_PLUGIN PROTO_ROOT OUTDIR.
# protoc writes into OUTDIR/gen/ under the protos' own paths (the generated code includes its
# headers by those paths); OUTDIR gets one flat file per generated source, which meson compiles,
# and etcd_api.h, the one header the cluster code includes.
set -eu
protoc=$1 plugin=$2 root=$3 out=$4
if [ ! -f "$root/etcd/etcdserver/etcdserverpb/rpc.proto" ]; then
  echo "etcd_protoc.sh: no etcd .proto files under $root (run scripts/setup-debian.sh)" >&2
  exit 1
fi
mkdir -p "$out/gen"
"$protoc" -I"$root" -I/usr/include --cpp_out="$out/gen" --grpc_out="$out/gen" \
  --plugin=protoc-gen-grpc="$plugin" etcd/etcdserver/etcdserverpb/rpc.proto
"$protoc" -I"$root" -I/usr/include --cpp_out="$out/gen" etcd/mvcc/mvccpb/kv.proto \
  etcd/auth/authpb/auth.proto gogoproto/gogo.proto google/api/annotations.proto google/api/http.proto
wrap() { printf '#include "%s"\n' "$1" > "$out/$2.tmp" && mv "$out/$2.tmp" "$out/$2"; }
wrap gen/etcd/etcdserver/etcdserverpb/rpc.pb.cc etcd_rpc.pb.cc
wrap gen/etcd/etcdserver/etcdserverpb/rpc.grpc.pb.cc etcd_rpc.grpc.pb.cc
wrap gen/etcd/mvcc/mvccpb/kv.pb.cc etcd_kv.pb.cc
wrap gen/etcd/auth/authpb/auth.pb.cc etcd_auth.pb.cc
wrap gen/gogoproto/gogo.pb.cc gogo.pb.cc
wrap gen/google/api/annotations.pb.cc google_annotations.pb.cc
wrap gen/google/api/http.pb.cc google_http.pb.cc
wrap etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h etcd_api.h
