# One image for every Hopper service in docker-compose.yml: the web server, the scheduler (the Spark
# driver), and the Spark master and workers. Workers launch executors whose Python is this image's,
# so Spark tasks can import Hopper, TensorFlow and Petastorm.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOPPER_HOME=/var/lib/hopper \
    HOPPER_DATA_ROOTS=/data \
    HOPPER_ARTIFACT_DIR=/shared/artifacts

# Java 17 runs the Spark daemons and the driver's JVM; curl serves the health checks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless curl procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/hopper
COPY pyproject.toml constraints.txt README.md ./
COPY hopper ./hopper
COPY engine ./engine
COPY mop_scheduler ./mop_scheduler
COPY roster ./roster
COPY rest ./rest
COPY webui ./webui
COPY edge_deploy ./edge_deploy
COPY migrations ./migrations
RUN pip install -c constraints.txt ".[postgres,spark]"

# hopper-sandbox runs users' model code when Hopper runs as root (see README, Security). The image runs as
# the unprivileged `hopper`: there the user switch, the network namespace and the filesystem view are off
# (logged as such) and the container is the boundary, with the rlimits and the audit hook inside it.
RUN useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin hopper-sandbox \
    && useradd --create-home --uid 1000 hopper \
    && mkdir -p /var/lib/hopper /data /shared/artifacts \
    && chown -R hopper:hopper /var/lib/hopper /data /shared
USER hopper
ENV PYSPARK_PYTHON=/usr/local/bin/python3

EXPOSE 8050
CMD ["hopper", "serve", "--host", "0.0.0.0", "--port", "8050"]
