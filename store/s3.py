"""A store in an S3-compatible bucket (AWS S3, MinIO, SeaweedFS, R2).

boto3 is imported lazily, so installs without the `s3` extra still work with
the file store.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from gpnn.store.base import ObjectNotFound, StoreError, TransientStoreError, check_key

TRANSIENT_CODES = {"500", "502", "503", "504", "SlowDown", "RequestTimeout", "InternalError"}


class S3Store:
    """Objects under `s3://bucket/prefix`. A PUT is atomic in S3."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        create_bucket: bool = False,
    ) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as error:  # pragma: no cover - depends on the install
            raise StoreError("the S3 store needs boto3: pip install 'gpnn[s3]'") from error
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        config = Config(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
            s3={"addressing_style": "path"},
            signature_version="s3v4",
        )
        credentials = {
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "region_name": region,
        }
        self._client = boto3.client("s3", endpoint_url=endpoint_url, config=config, **credentials)
        self._public = self._client
        if public_endpoint_url and public_endpoint_url != endpoint_url:
            self._public = boto3.client(
                "s3", endpoint_url=public_endpoint_url, config=config, **credentials
            )
        if create_bucket:
            self._ensure_bucket()

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _call(self, what: str, function, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return function(Bucket=self.bucket, **kwargs)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ObjectNotFound(kwargs.get("Key", "")) from None
            if code in TRANSIENT_CODES:
                raise TransientStoreError(f"{what}: {code}") from error
            raise StoreError(f"{what}: {error}") from error
        except BotoCoreError as error:
            raise TransientStoreError(f"{what}: {error}") from error

    def _ensure_bucket(self) -> None:
        try:
            self._call("head bucket", self._client.head_bucket)
        except (ObjectNotFound, StoreError):
            self._call("create bucket", self._client.create_bucket)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._call(
            f"put {key}",
            self._client.put_object,
            Key=self._key(key),
            Body=data,
            ContentType=content_type,
        )

    def get(self, key: str) -> bytes:
        answer = self._call(f"get {key}", self._client.get_object, Key=self._key(key))
        return answer["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            self._call(f"head {key}", self._client.head_object, Key=self._key(key))
        except ObjectNotFound:
            return False
        return True

    def _objects(self, prefix: str):
        token = None
        while True:
            kwargs = {"Prefix": self.prefix + prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("list", self._client.list_objects_v2, **kwargs)
            yield from page.get("Contents", [])
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def list(self, prefix: str) -> list[str]:
        return sorted(obj["Key"][len(self.prefix) :] for obj in self._objects(prefix))

    def download_url(self, key: str, expires_s: int) -> str | None:
        return self._public.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self._key(key)},
            ExpiresIn=expires_s,
        )

    def delete_expired(self, prefix: str, older_than_s: float) -> int:
        cutoff = time.time() - older_than_s
        deleted = 0
        for obj in self._objects(prefix):
            modified: datetime = obj["LastModified"]
            if modified.astimezone(UTC).timestamp() < cutoff:
                self._call("delete", self._client.delete_object, Key=obj["Key"])
                deleted += 1
        return deleted

    def ping(self) -> None:
        self._call("head bucket", self._client.head_bucket)
