# The operator image the chart runs (`milvus-rg-operator run`). Not built in CI (no container engine
# there); e2e/run.sh builds it and loads it into kind.
#
# Only the base package: the sandbox (operator/milvus_rg_sandbox) and its extra (kmock, cel-python,
# jsonschema) are not copied, so setuptools finds the operator package alone. Size: docs/operations.md.
#
# Runs as a non-root user on a read-only root filesystem: bytecode is compiled at build time and never
# written at run time, HOME and TMPDIR point at /tmp (the chart mounts an emptyDir there: kopf writes
# client certificates of a kubeconfig to temporary files; in-cluster login writes nothing).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    TMPDIR=/tmp
WORKDIR /src
COPY pyproject.toml requirements-lock.txt README.md ./
COPY operator/milvus_rg_operator ./operator/milvus_rg_operator
RUN pip install --compile -c requirements-lock.txt . && cd / && rm -rf /src
WORKDIR /
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["milvus-rg-operator"]
CMD ["run"]
