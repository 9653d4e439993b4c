# The operator image the chart runs (`milvus-rg-operator run`). Not built in CI (no container engine
# there); e2e/run.sh builds it and loads it into kind.
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml requirements-lock.txt README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir -c requirements-lock.txt . && useradd --uid 10001 --no-create-home operator
USER 10001
ENTRYPOINT ["milvus-rg-operator"]
CMD ["run"]
