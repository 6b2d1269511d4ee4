# Sourced by docker/build-images.sh after apt-get.
# `go run FILE.go` builds once per program (agent/src/gorun.rs); the rest is go's.
ln -sf /opt/codebeaker/codebeaker-agent "$root/usr/local/bin/go"
