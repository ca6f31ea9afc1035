"""etcd's v3 API messages (a subset), compiled from the .proto files beside this one by
scripts/generate-etcd.sh (``make etcd-code``). Do not edit the *_pb2 modules by hand."""
