"""The control plane runs as the chart runs it: as user 65532 with no capabilities, on a root
filesystem that is entirely read-only (no writable path at all, not even /tmp), with the
configuration file and token files the chart renders, against a real redis-server; it serves
/readyz and the admin API. Needs root for the mount namespace and chroot (CI runs as root)."""

import base64
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from urllib.parse import quote

from chart import binary, objects, render, values

USER = 65532


def render_objects_with(name, extra):
    vals = values(name)
    for key, value in extra.items():
        vals[key] = value
    return objects(render(vals))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, headers=None, timeout=20.0, proc=None):
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the control plane exited ({proc.returncode}): {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


REDIS_PASSWORD = "s3cret/with:chars@that#urls-mangle"


@pytest.fixture
def redis(tmp_path):
    server = shutil.which("redis-server")
    assert server, "redis-server is missing: scripts/setup.sh installs it"
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path),
                             "--requirepass", REDIS_PASSWORD], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
            time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def rootfs(tmp_path, objs, redis_password=None):
    """What the pod's filesystem holds: the binary (with the shared libraries a native build
    needs; the image's is static), the ConfigMap's file and the Secret's token files."""
    root = tmp_path / "rootfs"
    exe = binary("tollgate")
    libs = [line.split("=>")[-1].split("(")[0].strip() for line in
            subprocess.run(["ldd", str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()]
    for lib in [l for l in libs if l.startswith("/")]:
        dest = root / lib.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(lib), dest)
    (root / "usr/local/bin").mkdir(parents=True)
    shutil.copy2(exe, root / "usr/local/bin/tollgate")
    config = next(o for o in objs if o["kind"] == "ConfigMap")["data"]["tollgate.toml"]
    (root / "etc/tollgate/secrets").mkdir(parents=True)
    (root / "etc/tollgate/tollgate.toml").write_text(config)
    secret = next(o for o in objs if o["kind"] == "Secret")["data"]
    for key in ("admin-token", "dataplane-token"):
        (root / "etc/tollgate/secrets" / key).write_bytes(base64.b64decode(secret[key]))
    if redis_password is not None:  # the user's Secret, mounted where the chart mounts it
        (root / "etc/tollgate/redis").mkdir(parents=True)
        (root / "etc/tollgate/redis/password").write_text(redis_password + "\n")
    for path in [root, *root.rglob("*")]:
        executable = path.is_dir() or path.name == "tollgate" or ".so" in path.name
        path.chmod(0o555 if executable else 0o444)
    return root


def deployment_args_and_env(objs):
    container = next(o for o in objs if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return container, {e["name"]: e["value"] for e in container["env"]}


# The bundled Redis (its Service name pointed at the test's redis-server; the bundled one has no
# password, so the test's is given as the URL's), and an external one whose password the chart
# mounts from a Secret as a file.
CASES = {
    "bundled": ("defaults", lambda port: {}),
    "external with a password file": ("defaults", lambda port: {"redis": {"mode": "external", "external": {
        "url": f"redis://127.0.0.1:{port}/0", "passwordSecret": {"name": "redis-auth"}}}}),
}


@pytest.mark.parametrize("case", CASES)
def test_the_control_plane_serves_readyz_as_non_root_on_a_read_only_root(tmp_path, redis, case):
    assert os.geteuid() == 0, "needs root (mount namespace and chroot); CI runs as root"
    name, extra = CASES[case]
    objs = render_objects_with(name, extra(redis))
    container, env = deployment_args_and_env(objs)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    if case == "bundled":
        assert env["TOLLGATE_REDIS_URL"] == "redis://tollgate-redis:6379/0"
        env["TOLLGATE_REDIS_URL"] = f"redis://:{quote(REDIS_PASSWORD, safe='')}@127.0.0.1:{redis}/0"
        root = rootfs(tmp_path, objs)
    else:
        root = rootfs(tmp_path, objs, REDIS_PASSWORD)
    port = free_port()
    env["TOLLGATE_LISTEN"] = f"127.0.0.1:{port}"
    command = " ".join(["/usr/local/bin/tollgate", *container["args"]])
    # A private mount namespace where the root is a read-only bind; no tmpfs, no volume.
    tools = {t: shutil.which(t) for t in ("unshare", "mount", "setpriv", "chroot")}
    assert all(tools.values()), tools
    script = (f"{tools['mount']} --bind {root} {root} && {tools['mount']} -o remount,bind,ro {root} && "
              f"exec {tools['setpriv']} --no-new-privs {tools['chroot']} --userspec={USER}:{USER} {root} {command}")
    proc = subprocess.Popen([tools["unshare"], "--mount", "--propagation", "private", "sh", "-c", script],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status, body = wait_http(f"http://127.0.0.1:{port}/readyz", proc=proc)
        assert (status, body) == (200, "ready"), body
        status_lines = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        uid = next(l for l in status_lines if l.startswith("Uid:")).split()[1:]
        assert uid == [str(USER)] * 4
        cap_eff = next(l for l in status_lines if l.startswith("CapEff:")).split()[1]
        assert int(cap_eff, 16) == 0
        with pytest.raises(OSError, match="Read-only file system"):
            Path(f"/proc/{proc.pid}/root/tmp-probe").write_text("x")
        token = base64.b64decode(next(o for o in objs if o["kind"] == "Secret")["data"]["admin-token"]).decode()
        status, body = wait_http(f"http://127.0.0.1:{port}/v1/budgets",
                                 headers={"Authorization": f"Bearer {token}"})
        assert status == 200, body
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
        shutil.rmtree(root)  # a copy of the binary: ~100 MB in a debug build
    assert proc.returncode == 0, output
