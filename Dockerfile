# speakerlink server on the embedded default engine (CPU): Silero VAD + GE2E, weights inside
# their wheels, so the image needs no network at run time.
#   docker build -t speakerlink .
#   docker run -p 50051:50051 -v speakerlink-data:/data speakerlink
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY client ./client
COPY server ./server
COPY protos ./protos
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && pip install --no-cache-dir '.[server]'

RUN useradd --create-home --uid 10001 speakerlink && mkdir -p /data && chown speakerlink /data
USER speakerlink
VOLUME /data
ENV SPEAKERLINK_HOST=0.0.0.0 SPEAKERLINK_PORT=50051 SPEAKERLINK_DATA_DIR=/data
EXPOSE 50051

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import grpc, sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; \
sys.exit(g.HealthStub(grpc.insecure_channel('localhost:50051')).Check(h.HealthCheckRequest(), timeout=4).status != h.HealthCheckResponse.SERVING)"

CMD ["speakerlink", "serve"]
