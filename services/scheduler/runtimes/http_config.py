"""The "http" runtime's config: the URLs of an agent served elsewhere over HTTP.

Pure (imports no HTTP client): the registry checks an agent against it at
RegisterAgent.
"""

from __future__ import annotations

from typing import Any, Final

from sutradhar._fields import field_error
from sutradhar.services.common.config_fields import ConfigSchema, check_http_url, check_string_list

__all__ = ["SCHEMA"]


def _check(cfg: dict[str, Any], field: str) -> None:
    if "urls" in cfg and "url" in cfg:
        raise field_error(f"{field}.url", 'give either "url" or "urls", not both')
    if "url" in cfg:
        check_http_url(cfg["url"], f"{field}.url")
        return
    if "urls" not in cfg:
        raise field_error(f"{field}.urls", 'is required for runtime "http" (a list of http(s) URLs; or give "url")')
    urls = check_string_list(cfg["urls"], f"{field}.urls", non_empty=True)
    for i, url in enumerate(urls):
        check_http_url(url, f"{field}.urls[{i}]")


SCHEMA: Final = ConfigSchema(runtime="http", fields={"urls": None, "url": None}, check=_check)
