# For users with a registry: an equivalent of the offline-built codebeaker-go image on an
# official base. Not used by `make` here (there is no registry); build with
#   docker build -f docker/Dockerfile.go -t codebeaker-go:latest .
FROM golang:1.19-bookworm
RUN (getent passwd 1000 >/dev/null || useradd -u 1000 -M -d /workspace -s /usr/sbin/nologin sandbox) \
 && mkdir -p /workspace /cache /opt/codebeaker
WORKDIR /workspace
