"""Publishing: several tags of one image, and the check that a push with a wrong password publishes nothing."""

import json
import secrets

import dagger
from dagger import dag

REGISTRY_PORT = 5001
REPO = "embedder"


def registry_host(address: str) -> str:
    first = address.split("/", 1)[0]
    return first if ("." in first or ":" in first or first == "localhost") else "docker.io"


async def push(ctr: dagger.Container, address: str, tags: list[str], username: str = "",
               password: dagger.Secret | None = None, registry: dagger.Service | None = None,
               variants: list[dagger.Container] | None = None) -> list[str]:
    """Push every tag (with credentials, if given), with ``variants`` (other platforms' images) as one index;
    the first failure raises, and nothing after it is pushed."""
    if bool(username) != (password is not None):
        raise ValueError("pass both --username and --password, or neither (for a registry without login)")
    if password is not None:
        ctr = ctr.with_registry_auth(registry_host(address), username, password)
    return [await ctr.publish(f"{address}:{tag}", platform_variants=variants or [], registry_service=registry)
            for tag in tags]


#: Prints the manifests (JSON) of an OCI tarball's platform index (argv[1]), through any index of one entry.
INDEX = """
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as tar:
    index = json.load(tar.extractfile("index.json"))
    while len(index["manifests"]) == 1 and "platform" not in index["manifests"][0]:
        index = json.load(tar.extractfile("blobs/" + index["manifests"][0]["digest"].replace(":", "/")))
    print(json.dumps(index["manifests"]))
"""


def by_platform(manifests: list[dict]) -> dict[str, str]:
    """os/architecture[/variant] -> digest, for an index's manifests (as the registry or a tarball lists them)."""
    return {
        "/".join(x for x in (m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant")) if x):
            m["digest"]
        for m in manifests if "platform" in m
    }


async def platform_digests(tools: dagger.Container, images: list[dagger.Container]) -> dict[str, str]:
    """Each platform's manifest digest in the index of ``images`` (the same manifests `publish` pushes)."""
    first, *rest = images
    out = await (
        tools.with_mounted_file("/index.tar", first.as_tarball(platform_variants=rest))
        .with_exec(["python", "-c", INDEX, "/index.tar"]).stdout()
    )
    return by_platform(json.loads(out))


async def htpasswd(tools: dagger.Container, user: str, password: dagger.Secret) -> str:
    return await (
        tools.with_env_variable("REG_USER", user).with_secret_variable("REG_PASSWORD", password)
        .with_exec(["uv", "run", "--no-project", "--with", "bcrypt==4.3.0", "python", "-c",
                    "import bcrypt, os; print(os.environ['REG_USER'] + ':' + bcrypt.hashpw("
                    "os.environ['REG_PASSWORD'].encode(), bcrypt.gensalt()).decode())"])
        .stdout()
    )


def registry(registry_image: str, htpasswd_line: str, port: int = REGISTRY_PORT) -> dagger.Service:
    return (
        dag.container().from_(registry_image)
        .with_new_file("/auth/htpasswd", htpasswd_line)
        .with_env_variable("REGISTRY_AUTH", "htpasswd")
        .with_env_variable("REGISTRY_AUTH_HTPASSWD_REALM", "embedder-test")
        .with_env_variable("REGISTRY_AUTH_HTPASSWD_PATH", "/auth/htpasswd")
        .with_env_variable("REGISTRY_HTTP_ADDR", f":{port}")
        .with_exposed_port(port)
        .as_service(use_entrypoint=True)
    )


QUERY = """
import base64, json, os, sys, urllib.request
auth = base64.b64encode(f"{os.environ['REG_USER']}:{os.environ['REG_PASSWORD']}".encode()).decode()
def get(path, accept="application/json"):
    req = urllib.request.Request("http://registry:%s" + path, headers={"Authorization": "Basic " + auth, "Accept": accept})
    with urllib.request.urlopen(req) as r:
        return r.headers.get("Docker-Content-Digest"), json.load(r)
out = {"catalog": get("/v2/_catalog")[1]}
if len(sys.argv) > 1:
    accept = "application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json"
    out["digest"], index = get(f"/v2/%s/manifests/{sys.argv[1]}", accept)
    out["manifests"] = index.get("manifests", [])
print(json.dumps(out))
""" % (REGISTRY_PORT, REPO)


async def query(tools: dagger.Container, svc: dagger.Service, user: str, password: dagger.Secret,
                tag: str | None = None) -> dict:
    """What the registry holds, read over its HTTP API with the right credentials."""
    ctr = (tools.with_service_binding("registry", svc).with_env_variable("REG_USER", user)
           .with_secret_variable("REG_PASSWORD", password)
           .with_env_variable("NONCE", secrets.token_hex(8)))
    return json.loads(await ctr.with_exec(["python", "-c", QUERY, *([tag] if tag else [])]).stdout())
