# rgrid runtime. Build: docker build -f infra/runtimes/python-3.10.Dockerfile -t rgrid/python:3.10 infra/runtimes
FROM python:3.10-slim-bookworm
# Same contract as the Debian-built local images (infra/build-runtimes.sh):
# non-root user rgrid uid/gid 1000, WORKDIR /work, same ENV.
RUN groupadd -g 1000 rgrid \
 && useradd -u 1000 -g 1000 -m -d /home/rgrid -s /bin/bash rgrid \
 && install -d -o 1000 -g 1000 -m 0755 /work

ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    HOME=/tmp \
    LANG=C.UTF-8
WORKDIR /work
CMD ["python3"]
