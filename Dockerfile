# openi-tasks in a container, for operators who cannot install Python packages on their machine.
#
#   docker build -t openi-tasks .
#   docker build -t openi-tasks --build-arg BASE_IMAGE=registry.example.com/debian:bookworm-slim .
#
# kubectl: put the binary at dist/kubectl for an air-gapped build; otherwise it is downloaded from
# KUBECTL_URL and checked against its published sha256.
# With --build-arg MAVEN=1: a JRE and Maven, for hadoop.prepare with hadoop.hadoop-maven-repository
# (bench/README.md says what they add to the image's size).
# Keep the cache between runs: -v openi-cache:/var/cache/openi-tasks.
# Behind a TLS-inspecting proxy: put its CA certificate(s) in dist/ca-certificates/*.crt; they are
# trusted for the downloads (pip, kubectl) and in the image.
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
# Two stages: `dependencies` (Debian's packages, kubectl, the Python packages openi-tasks needs)
# changes only with pyproject.toml or the build arguments, so a rebuild after a change of the code
# reuses it and only installs the new wheel (--target dependencies builds and tags it alone).
FROM ${BASE_IMAGE} AS dependencies

ARG KUBECTL_VERSION=v1.37.2
ARG KUBECTL_URL=https://dl.k8s.io/release
ARG MAVEN=

# The cache (bundles, downloads, Maven's repository) is writable by whichever uid the entrypoint
# runs as: the operator's own, not root.
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 OPENI_CACHE=/var/cache/openi-tasks
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv openssh-client ca-certificates curl \
        ${MAVEN:+default-jre-headless maven} \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
 && mkdir -m 1777 /var/cache/openi-tasks

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

# The dependencies pyproject.toml names, as `pip install openi-tasks` would install them; pip and
# setuptools leave the venv in the same layer (the next stage runs pip from Debian's wheel of it).
COPY pyproject.toml /tmp/src/
RUN python3 -m venv /opt/venv \
 && export PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
 && python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/tmp/src/pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
 && pip install -q -r /tmp/requirements.txt \
 && pip uninstall -y -q setuptools \
 && python3 -m pip uninstall -y -q pip \
 && rm -rf /tmp/src /tmp/requirements.txt /root/.cache

FROM dependencies
WORKDIR /opt/openi-tasks
# The package is installed from the wheel built here (templates and the service catalog inside it),
# not as an editable checkout: the image runs what `pip install openi-tasks` would give an operator.
COPY pyproject.toml setup.py README.md /tmp/src/
COPY openi_tasks/ /tmp/src/openi_tasks/
COPY templates/ /tmp/src/templates/
RUN export PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
 && pip="$(ls /usr/share/python-wheels/pip-*.whl)/pip" \
 && python3 "$pip" wheel -q --no-deps -w /tmp/wheels /tmp/src \
 && python3 "$pip" install -q --no-deps /tmp/wheels/*.whl \
 && rm -rf /tmp/src /tmp/wheels /root/.cache
# `inv` here lists the installed package's tasks, as `openi` does anywhere.
COPY tasks.py ./
COPY cluster-configuration/ cluster-configuration/
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["inv", "--list"]
