# sessionwarden worker image. Build: docker build -t sessionwarden .
# Two stages: the compiler (pyasn has no wheels) stays out of the runtime image.
FROM python:3.11-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY detectors ./detectors
COPY worker ./worker
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SESSIONWARDEN_DATA_DIR=/var/lib/sessionwarden \
    SESSIONWARDEN_WEB_HOST=0.0.0.0 \
    SESSIONWARDEN_CITY_DB=/app/data/mmdb/GeoIP2-City-Test.mmdb \
    SESSIONWARDEN_ASN_DB=/app/data/mmdb/GeoLite2-ASN-Test.mmdb \
    SESSIONWARDEN_ANONYMOUS_DB=/app/data/mmdb/GeoIP2-Anonymous-IP-Test.mmdb \
    SESSIONWARDEN_PYASN_DB=/app/data/pyasn/ipasn_20140513.dat.gz
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
 && useradd --system --uid 10001 --home-dir /var/lib/sessionwarden sessionwarden \
 && mkdir -p /var/lib/sessionwarden /app \
 && chown sessionwarden /var/lib/sessionwarden
WORKDIR /app
# The bundled test databases (the worker logs a loud warning while they are in
# use); compose mounts ./data over this, production points the
# SESSIONWARDEN_*_DB variables at real GeoLite2/GeoIP2 files.
COPY data/mmdb ./data/mmdb
COPY data/pyasn ./data/pyasn
USER sessionwarden
EXPOSE 6066
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:6066/health', timeout=2)" || exit 1
# exec form: SIGTERM reaches the worker, which finishes its batch and commits.
ENTRYPOINT ["sessionwarden"]
CMD ["worker"]
