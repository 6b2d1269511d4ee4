# For users with a registry: an equivalent of the offline-built codebeaker-javascript image on an
# official base, with Node (the stateless path) and Deno (what the Loopai client runs in
# sessions), behind the same permission-granting `deno` wrapper. Not used by `make` here
# (there is no registry); build with
#   docker build -f docker/Dockerfile.javascript -t codebeaker-javascript:latest .
FROM denoland/deno:bin-2.9.6 AS deno
FROM node:18-bookworm-slim
COPY --from=deno /deno /usr/local/lib/deno/deno
COPY languages/javascript/image/deno /usr/local/bin/deno
RUN (getent passwd 1000 >/dev/null || useradd -u 1000 -M -d /workspace -s /usr/sbin/nologin sandbox) \
 && mkdir -p /workspace /cache /opt/codebeaker
WORKDIR /workspace
