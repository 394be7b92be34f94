# wanbot's image. Build and run it with compose (docs/deployment.md):
#   docker compose --profile sqlite up -d
# CI cannot pull base images, so this file was never built there; tests/test_deploy_container.py
# checks what it can: the install steps below, run in a fresh venv, and the CLI commands it uses.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package needs: a change to the tests or the README's prose elsewhere does not
# invalidate the install layer (README.md is the package's long description, so it is needed).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot/ bot/
COPY cogs/ cogs/
RUN pip install --no-cache-dir .

# The bot's own user, owning nothing but its data. /data is chowned before VOLUME so that a new
# named volume starts with the same owner (Docker copies the image's /data into it).
RUN useradd --system --user-group --uid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin wanbot \
    && mkdir /data && chown wanbot:wanbot /data
VOLUME /data
ENV DATABASE_URL=sqlite:////data/wanbot.db
# Not /src: `python -m bot` must run the installed package, and a `.env` is never read from the
# image (settings come from the container's environment: compose's env_file).
WORKDIR /data
USER wanbot

# The bot stops cleanly on SIGTERM, letting create calls and deliveries in flight finish (up to
# 120 s): give it that long. `docker stop` waits only 10 s by default; compose.yaml sets
# stop_grace_period, and with `docker run` pass `--stop-timeout 150`.
STOPSIGNAL SIGTERM
# Healthy only while a bot process with this configuration is connected to Discord and its job
# runner is alive (not merely "python starts"); stale after 60 s, hence the start period.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "bot", "check", "--live"]
CMD ["python", "-m", "bot"]
