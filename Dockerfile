# openi-tasks in a container, for operators who cannot install Python packages on their machine.
#
#   docker build -t openi-tasks .
#   docker build -t openi-tasks --build-arg BASE_IMAGE=registry.example.com/debian:bookworm-slim .
#
# kubectl: put the binary at dist/kubectl for an air-gapped build; otherwise it is downloaded from
# KUBECTL_URL and checked against its published sha256.
# Behind a TLS-inspecting proxy: put its CA certificate(s) in dist/ca-certificates/*.crt; they are
# trusted for the downloads (pip, kubectl) and in the image.
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
FROM ${BASE_IMAGE}

ARG KUBECTL_VERSION=v1.36.0
ARG KUBECTL_URL=https://dl.k8s.io/release

ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv openssh-client ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*

COPY dist/ /tmp/dist/
RUN set -e; \
    if ls /tmp/dist/ca-certificates/*.crt >/dev/null 2>&1; then \
        cp /tmp/dist/ca-certificates/*.crt /usr/local/share/ca-certificates/ && update-ca-certificates; \
    fi; \
    if [ -f /tmp/dist/kubectl ]; then \
        install -m 0755 /tmp/dist/kubectl /usr/local/bin/kubectl; \
    else \
        arch=$(dpkg --print-architecture); \
        curl -fsSL -o /tmp/kubectl "$KUBECTL_URL/$KUBECTL_VERSION/bin/linux/$arch/kubectl"; \
        echo "$(curl -fsSL "$KUBECTL_URL/$KUBECTL_VERSION/bin/linux/$arch/kubectl.sha256")  /tmp/kubectl" | sha256sum -c -; \
        install -m 0755 /tmp/kubectl /usr/local/bin/kubectl; \
    fi; \
    rm -rf /tmp/dist /tmp/kubectl

WORKDIR /opt/openi-tasks
COPY pyproject.toml README.md ./
COPY openi_tasks/ openi_tasks/
RUN python3 -m venv /opt/venv \
 && PIP_CERT=/etc/ssl/certs/ca-certificates.crt pip install -e . \
 && pip uninstall -y -q setuptools \
 && python3 -m pip uninstall -y -q pip \
 && rm -rf /root/.cache
COPY tasks.py service.yaml ./
COPY templates/ templates/
COPY cluster-configuration/ cluster-configuration/
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["inv", "--list"]
