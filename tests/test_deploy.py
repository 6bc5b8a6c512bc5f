"""deploy/: the nginx site as scripts/up renders it passes `nginx -t` with a generated
certificate, redirects to HTTPS, sends the security headers, exposes only the API, the admin,
the dashboard and static files, and does not buffer the event stream."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ci_services import service_missing

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def nginx():
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        service_missing("deploy: nginx is not installed (apt-get install -y nginx)")
    if not shutil.which("openssl"):
        service_missing("deploy: openssl is not installed")


def configure(tmp_path, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CHRONOSX_")}
    environment["PATH"] = f"{environment.get('PATH', '')}:/usr/sbin:/sbin"
    environment.update(CHRONOSX_PREFIX=str(tmp_path / "stack"), CHRONOSX_HTTP_PORT="18180", CHRONOSX_HTTPS_PORT="18543",
                       CHRONOSX_APP_PORT="18100", CHRONOSX_SERVER_NAME="chronosx.example.org", **env)
    return subprocess.run(["scripts/up", "--nginx-only"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)


def locations(site: str) -> dict:
    """location pattern -> its block's text, of the HTTPS server."""
    https = site[site.index("ssl http2"):]
    return {m.group(1).strip(): m.group(2) for m in re.finditer(r"location ([^{]+)\{([^}]*)\}", https)}


def test_nginx_t_accepts_the_site_with_a_generated_certificate(tmp_path, nginx):
    done = configure(tmp_path)

    assert done.returncode == 0, done.stderr
    prefix = tmp_path / "stack"
    assert (prefix / "tls/cert.pem").exists() and (prefix / "tls/key.pem").stat().st_mode & 0o077 == 0
    again = subprocess.run(["nginx", "-t", "-c", str(prefix / "nginx/nginx.conf"), "-p", f"{prefix}/nginx/"],
                           capture_output=True, text=True)
    assert again.returncode == 0 and "test is successful" in again.stderr


def test_nginx_t_fails_the_run_when_the_given_certificate_is_not_one(tmp_path, nginx):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")

    done = configure(tmp_path, CHRONOSX_TLS_CERT=str(bad), CHRONOSX_TLS_KEY=str(bad))

    assert done.returncode != 0
    assert "nginx -t refused" in done.stderr


def test_the_site_redirects_to_https_and_sends_the_security_headers(tmp_path, nginx):
    assert configure(tmp_path).returncode == 0
    site = (tmp_path / "stack/nginx/chronosx-site.conf").read_text()

    assert "listen 18180;" in site and "return 301 https://$host:18543$request_uri;" in site
    assert "listen 18543 ssl http2;" in site
    for header in ("Strict-Transport-Security \"max-age=31536000; includeSubDomains\"", "X-Content-Type-Options",
                   "X-Frame-Options", "Referrer-Policy", "Content-Security-Policy"):
        assert f"add_header {header}" in site
    assert "client_max_body_size 1m;" in site and "proxy_read_timeout 40s;" in site
    assert "@" not in re.sub(r"#.*", "", site)  # every placeholder filled


def test_only_the_api_admin_dashboard_and_static_files_are_exposed(tmp_path, nginx):
    assert configure(tmp_path).returncode == 0
    blocks = locations((tmp_path / "stack/nginx/chronosx-site.conf").read_text())

    proxied = {pattern for pattern, body in blocks.items() if "proxy_pass" in body}
    assert proxied == {"= /api/v1/stream/", "/api/", "/admin/", "= /", "/dashboard/"}
    assert f"alias {tmp_path}/stack/static/;" in blocks["/static/"]
    assert "return 404;" in blocks["/"]  # /metrics and anything else


def test_the_event_stream_is_not_buffered(tmp_path, nginx):
    assert configure(tmp_path).returncode == 0
    stream = locations((tmp_path / "stack/nginx/chronosx-site.conf").read_text())["= /api/v1/stream/"]

    assert "proxy_buffering off;" in stream and "proxy_read_timeout 1h;" in stream


def test_the_environment_template_names_every_variable_the_settings_read():
    settings_source = (ROOT / "chronosx/settings.py").read_text()
    read = set(re.findall(r'env(?:_bool)?\("([A-Z0-9_]+)"', settings_source))
    template = (ROOT / "deploy/chronosx.env.example").read_text()
    named = set(re.findall(r"^#?([A-Z0-9_]+?)(?:_FILE)?=", template, flags=re.M))

    assert read, "no env() call found in settings"
    assert read - named == set()


def test_every_process_has_a_sandboxed_systemd_unit():
    units = {path.name: path.read_text() for path in (ROOT / "deploy/systemd").glob("*.service")}

    assert set(units) == {"chronosx-web.service", "chronosx-governance.service", "chronosx-reports.service",
                          "chronosx-beat.service", "chronosx-sequencer.service", "chronosx-node@.service",
                          "chronosx-router.service"}
    for name, text in units.items():
        for directive in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "CapabilityBoundingSet=\n",
                          "LoadCredential=django_secret_key:", "Restart=always", "User=@USER@"):
            assert directive in text, f"{name} lacks {directive.strip()}"
        assert "--host 127.0.0.1" in text or "uvicorn" not in text
    # Only the router holds the venue credentials; each node sees its own key folder only.
    assert [n for n, t in units.items() if "weex_api_key" in t] == ["chronosx-router.service"]
    assert "CHRONOSX_NODE_KEY_DIR=@PREFIX@/keys/%i" in units["chronosx-node@.service"]
    assert "User=@USER@-%i" in units["chronosx-node@.service"]
    for name in ("chronosx-web.service", "chronosx-governance.service", "chronosx-reports.service",
                 "chronosx-beat.service", "chronosx-sequencer.service", "chronosx-router.service"):
        assert "InaccessiblePaths=@PREFIX@/keys" in units[name]
