"""All settings of the batch service, read from environment variables.

Every setting has a documented default so that `gpnn serve` with nothing
configured runs the whole product on one machine. Names are `GPNN_<FIELD>`
(upper case); `REDIS_URL` and `STORE_URL` are also accepted without the prefix.
The table in `docs/architecture.md` lists them.
"""

from __future__ import annotations

import ipaddress
import logging
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gpnn.core.device import DEVICE_FORMS, Device
from gpnn.core.params import CommonParams, SearchMode

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Configuration of the API, the workers and the store."""

    model_config = SettingsConfigDict(env_prefix="GPNN_", extra="ignore", frozen=True)

    # --- where state lives -------------------------------------------------------------
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("GPNN_REDIS_URL", "REDIS_URL"),
        description="Redis holding the queue and job records; unset: `gpnn serve` starts an "
        "embedded redis-server.",
    )
    store_url: str = Field(
        "file://./gpnn-data",
        validation_alias=AliasChoices("GPNN_STORE_URL", "STORE_URL"),
        description="`file:///abs/path` (or `file://./relative`) or `s3://bucket/prefix`.",
    )
    embedded_redis_dir: str | None = Field(
        "gpnn-redis",
        description="Where the embedded redis-server (no REDIS_URL) keeps its append-only "
        "file, so that jobs and batches survive a restart of `gpnn serve`; kept apart from "
        "the store, which batches can read; unset (empty): nothing is kept.",
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint (MinIO, SeaweedFS, R2...); unset: AWS."
    )
    s3_public_endpoint_url: str | None = Field(
        None, description="Endpoint used in download URLs handed to clients (default: endpoint)."
    )
    s3_region: str = Field("us-east-1", description="S3 region (signing).")
    s3_access_key_id: str | None = Field(None, description="S3 key id; unset: boto3's chain.")
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret key.")
    s3_create_bucket: bool = Field(False, description="Create the bucket when it is missing.")
    download_url_ttl_s: int = Field(900, ge=1, description="Lifetime of S3 download links.")
    result_ttl_s: int = Field(
        7 * 24 * 3600, ge=60, description="Job records and outputs expire after this long."
    )
    cleanup_interval_s: int = Field(
        3600, ge=1, description="How often the API deletes expired outputs from the store."
    )

    report_metric_stride: int = Field(
        8,
        ge=1,
        le=16,
        description="Batch reports measure coherence and completeness on every N-th patch "
        "row and column (N^2 times cheaper, each distance still exact; 1: every patch).",
    )

    # --- queue and workers ---------------------------------------------------------------
    queue_name: str = Field("gpnn", description="RQ queue (webhooks: `<name>-webhooks`).")
    workers: int = Field(2, ge=1, le=64, description="Worker processes per machine.")
    device: str = Field(
        "cpu",
        description="Engine device of the workers: cpu, cuda, cuda:N (GPU number N) or auto "
        "(`--device` of `gpnn worker`, `gpnn serve` and `gpnn demo`).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO",
        description="What the API and the workers log (`gpnn demo` shows WARNING and above, "
        "so that the REST calls it prints stand out).",
    )
    default_mode: SearchMode = Field(
        CommonParams.model_fields["mode"].default,
        description="Search mode of jobs whose parameters name none (`fast` or `exact`).",
    )
    job_timeout_s: int = Field(3600, ge=1, description="A job running longer is stopped.")
    job_retries: int = Field(2, ge=0, le=10, description="Retries of a job lost with its worker.")
    heartbeat_interval_s: int = Field(
        10, ge=1, description="A worker refreshes its running job's lease this often."
    )
    heartbeat_grace_s: int = Field(
        30, ge=1, description="A job whose lease is this much overdue counts as abandoned."
    )
    maintenance_interval_s: int = Field(
        15, ge=1, description="How often idle workers look for abandoned jobs."
    )
    drain_grace_s: float = Field(
        30.0,
        ge=0,
        description="A worker asked to stop (SIGTERM) finishes its running job within this "
        "long, else hands it back to the front of the queue at once.",
    )
    worker_host: str | None = Field(
        None,
        description="Name of this worker's host, stamped on each job it starts (`worker_host` "
        "in the job's record and the batch manifest); unset: the machine's host name.",
    )
    worker_health_file: str | None = Field(
        None,
        description="`gpnn worker` writes its pool's health here (JSON) every second; "
        "`gpnn worker --check` reads it (container health checks).",
    )
    store_retries: int = Field(5, ge=0, le=20, description="Retries of a transient store error.")
    store_retry_delay_s: float = Field(0.2, ge=0, description="First backoff delay (doubles).")

    # --- limits ---------------------------------------------------------------------------
    max_upload_bytes: int = Field(64 * MIB, ge=1024, description="Largest request body.")
    max_pixels: int = Field(4_194_304, ge=64, description="Largest image (width x height).")
    max_side: int = Field(4096, ge=8, description="Largest image side in pixels.")
    max_samples: int = Field(16, ge=1, description="Most samples per job.")
    max_batch_inputs: int = Field(1000, ge=1, description="Most inputs in one batch.")
    max_batch_jobs: int = Field(5000, ge=1, description="Most jobs (inputs x params) per batch.")
    max_batch_bytes: int = Field(
        256 * MIB, ge=1024, description="Most bytes a batch's archive may expand to."
    )
    max_batch_pixels: int = Field(
        200_000_000, ge=64, description="Most pixels of all a batch's input images together."
    )
    max_job_work: float = Field(
        200.0,
        gt=0,
        description="Most work of one job, in megapixel-iterations (output pixels x iterations "
        "x pyramid levels x samples; about 0.6 per second on 2 CPU cores in fast mode).",
    )
    rate_limit_per_minute: int = Field(
        600, ge=0, description="Most submissions per owner per minute (429 above); 0: no limit."
    )
    max_active_jobs: int = Field(
        20_000, ge=1, description="Most unfinished (queued or running) jobs per owner (429 above)."
    )

    # --- API --------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="API listen address (`gpnn serve`).")
    port: int = Field(8000, ge=0, le=65535, description="API listen port.")
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated API keys; empty: no authentication.",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="Master key of webhook signatures (each owner's secret is derived from it); "
        "unset: generated once and kept in Redis. Owners read theirs at GET /v1/webhooks/secret.",
    )
    webhook_allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated networks (CIDR) that webhooks may reach although internal "
        "(loopback, private, link-local); empty: public addresses only.",
    )
    webhook_retries: int = Field(5, ge=0, le=20, description="Retries of a failed delivery.")
    webhook_timeout_s: float = Field(5.0, gt=0, description="Timeout of one delivery.")
    webhook_backoff_s: float = Field(1.0, ge=0, description="First retry delay (doubles).")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        try:
            return str(Device.parse(value))
        except ValueError:
            raise ValueError(f"must be {DEVICE_FORMS}; got {value!r}") from None

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("webhook_allow_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [n.strip() for n in value.split(",") if n.strip()]
        return value

    @field_validator("webhook_allow_networks")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"`{network}` is not a network (CIDR, e.g. 10.0.0.0/8)") from None
        return value

    @field_validator("store_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("file://", "s3://")):
            raise ValueError("`store_url` must start with file:// or s3://")
        return value

    def as_env(self) -> dict[str, str]:
        """Environment variables that reproduce these settings in another process."""
        env = {}
        for name, value in self.model_dump(exclude_none=True).items():
            if name == "api_keys":
                value = ",".join(k.get_secret_value() for k in self.api_keys)
            elif name == "webhook_allow_networks":
                value = ",".join(value)
            elif isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"GPNN_{name.upper()}"] = str(value)
        return env


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()


def settings_table() -> str:
    """The Markdown table of every setting, its default and meaning (docs/architecture.md
    holds this table; a test keeps the two the same)."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        variable = f"`GPNN_{name.upper()}`"
        if isinstance(field.validation_alias, AliasChoices):
            aliases = [a for a in field.validation_alias.choices if not a.startswith("GPNN_")]
            variable += "".join(f" (or `{alias}`)" for alias in aliases)
        if field.default_factory is not None or field.default == []:
            default = "(empty)"
        elif field.default is None:
            default = "unset"
        else:
            default = str(getattr(field.default, "value", field.default))
        rows.append(f"| {variable} | `{default}` | {field.description} |")
    return "\n".join(rows) + "\n"


def configure_logging(settings: Settings) -> None:
    """The log lines of one process of the service (API, worker, supervisor)."""
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
