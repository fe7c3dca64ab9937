"""A browser without a browser: cookies, CSRF tokens and url-encoded forms over plain HTTP."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

STRONG_PASSWORD = "violet-harbor-71-quartz"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class WebClient:
    """One browser session on a gateway's web pages; `headers` go with every request."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url
        self.headers = headers or {}
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, dict, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=self.headers)
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode(errors="replace")

    def get(self, path: str) -> tuple[int, dict, str]:
        return self.request("GET", path)

    def submit(self, page: str, form: dict, action: str | None = None) -> tuple[int, dict, str]:
        """Load `page` for its CSRF token, then POST `form` to `action` (the page itself by default)."""
        _, _, html = self.get(page)
        match = re.search(r'name="csrf" value="([^"]+)"', html)
        return self.request("POST", action or page, {**form, "csrf": match.group(1) if match else ""})

    def log_in(self, email: str, password: str = STRONG_PASSWORD) -> int:
        return self.submit("/login", {"email": email, "password": password, "next": "/dashboard/keys"})[0]
