# rgrid runtime. Build: docker build -f infra/runtimes/node-20.Dockerfile -t rgrid/node:20 infra/runtimes
FROM node:20-bookworm-slim
# The upstream image already has user "node" at uid/gid 1000; rename it to rgrid.
RUN groupmod -n rgrid node \
 && usermod -l rgrid -d /home/rgrid -m node \
 && install -d -o 1000 -g 1000 -m 0755 /work
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    HOME=/tmp \
    LANG=C.UTF-8
WORKDIR /work
CMD ["node"]
