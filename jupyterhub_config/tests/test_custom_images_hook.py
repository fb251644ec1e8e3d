"""Tests of the spawner hook module, on Debian's python3 with JupyterHub 3.0.

The unit tests use plain objects for spawners and pods; the integration tests
talk to a running custom-images service behind a real hub (test/e2e/spawn.test.ts
starts them and sets CUSTOM_IMAGES_TEST_* in the environment).
"""
import asyncio
import json
import logging
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import custom_images_hook as hook  # noqa: E402

SYSTEMS = [{"slug": "dock", "displayName": "Docker hosts", "enabled": True}]
IMAGES = [
    {"id": 7, "name": "<b>lab</b>", "image": "r.example/lab:1", "system": {"slug": "dock", "displayName": "Docker hosts"}},
]
PARAMS = {
    "image": "r.example/lab@sha256:" + "a" * 64,
    "digest": "sha256:" + "a" * 64,
    "system": "dock",
    "spawner": "docker",
    "mount": {"volume": "jupyterhub-user-ada-dock-12345678", "target": "/home/jovyan/work"},
    "uid": 1000,
    "gid": 100,
    "env": {"CUSTOM_IMAGES_IMAGE": "r.example/lab@sha256:" + "a" * 64},
    "pull": {"kind": "kubernetes", "dockerconfigjson": '{"auths": {}}'},
    "check": {"id": 1, "kind": "static", "finishedAt": None},
}


def fake_spawner(**extra):
    """A spawner as far as the hook uses one: plain attributes."""
    attributes = {
        "user": SimpleNamespace(name="ada", escaped_name="ada"),
        "user_options": {},
        "log": logging.getLogger("test"),
        "environment": {},
        "image": None,
        "volumes": {},
        "extra_create_kwargs": {},
    }
    attributes.update(extra)
    return SimpleNamespace(**attributes)


# -- the form -----------------------------------------------------------------
@pytest.mark.parametrize("bootstrap5,expected,absent", [(False, 'class="radio"', "form-check"), (True, "form-check", 'class="radio"')])
def test_form_markup_follows_the_hubs_bootstrap(bootstrap5, expected, absent):
    html = hook.CustomImages("http://x/", "t", "/services/custom-images/", bootstrap5=bootstrap5).render_form(SYSTEMS, IMAGES)
    assert expected in html and absent not in html
    assert 'name="image_id"' in html and 'value="dock:7"' in html
    assert "&lt;b&gt;lab&lt;/b&gt;" in html and "<b>lab</b>" not in html
    assert 'href="/services/custom-images/"' in html


def test_form_offers_the_standard_environment_first_and_chosen():
    html = hook.CustomImages("http://x/", "t", "/").render_form(SYSTEMS, IMAGES, standard="Standard environment (hub/default:1)")
    first = html.index('name="image_id"')
    assert html.index('value="standard"') < html.index('value="dock:7"')
    assert 'value="standard" checked' in html[first - 80 :] and 'value="dock:7" checked' not in html
    assert "Standard environment (hub/default:1)" in html


def test_form_says_which_image_is_ready_to_start():
    ready = [{**IMAGES[0], "start": {"state": "ready", "text": "Ready to start"}}]
    assert "Ready to start" in hook.CustomImages("http://x/", "t", "/").render_form(SYSTEMS, ready)


def test_form_without_checked_images_links_to_the_service():
    html = hook.CustomImages("http://x/", "t", "/services/custom-images/").render_form(SYSTEMS, [])
    assert "no checked custom image yet" in html and "/services/custom-images/" in html
    assert 'value="standard"' in html


def test_form_lists_published_images_first_then_own_then_shared():
    def shared(id, access, **extra):
        return {"id": id, "name": f"n{id}", "image": f"r.example/x:{id}", "owner": "ada", "access": access,
                "system": {"slug": "dock", "displayName": "Docker hosts"}, "status": {"code": "passed"}, **extra}

    html = hook.CustomImages("http://x/", "t", "/").render_form(
        SYSTEMS, IMAGES, shared=[shared(9, "shared"), shared(8, "published", description="Course <env>")]
    )
    assert html.index('value="standard"') < html.index('value="dock:8"') < html.index('value="dock:7"') < html.index('value="dock:9"')
    assert "published: Course &lt;env&gt;" in html and "shared by ada" in html


def test_form_shows_each_owners_description_escaped_beside_the_publication_text():
    mine = dict(IMAGES[0], description='<script>alert("mine")</script>')
    theirs = {"id": 8, "name": "course", "image": "r.example/c:1", "owner": "bob", "access": "published",
              "system": {"slug": "dock", "displayName": "Docker hosts"}, "status": {"code": "passed"},
              "description": "Course <b>2026</b>", "ownerDescription": "Bob's <img src=x onerror=alert(1)> env"}
    html = hook.CustomImages("http://x/", "t", "/").render_form(SYSTEMS, [mine], shared=[theirs])
    assert "&lt;script&gt;alert(&quot;mine&quot;)&lt;/script&gt;" in html and "<script>" not in html
    assert "published: Course &lt;b&gt;2026&lt;/b&gt;" in html
    assert "Bob&#x27;s &lt;img src=x onerror=alert(1)&gt; env" in html and "<img" not in html
    # Another's publication text is not taken for its owner's description.
    assert html.count("custom-images-description") == 2


def test_form_still_offers_own_images_when_the_service_cannot_list_shared_ones():
    class OlderService(hook.CustomImages):
        async def _get(self, path):
            if path == "systems":
                return SYSTEMS
            if path.startswith("users/ada/images"):
                return [{**IMAGES[0], "status": {"code": "passed"}}]
            raise hook.LaunchRefused(404, "Not found")

    html = asyncio.run(OlderService("http://x/", "t", "/").options_form(fake_spawner()))
    assert 'value="dock:7"' in html and 'value="standard"' in html


PROFILES = [
    {"display_name": "Small", "slug": "small", "description": "2 CPUs"},
    {"display_name": "GPU <A100>", "slug": "gpu", "default": True},
]


def test_form_offers_the_hubs_profiles_first_with_the_default_chosen():
    html = hook.CustomImages("http://x/", "t", "/").render_form(SYSTEMS, IMAGES, profiles=PROFILES)
    assert html.index('value="profile:small"') < html.index('value="profile:gpu"') < html.index('value="dock:7"')
    assert 'value="profile:gpu" checked' in html and 'value="profile:small" checked' not in html
    assert 'value="standard"' not in html
    assert "GPU &lt;A100&gt;" in html and "2 CPUs" in html


def test_profiles_come_from_kubespawners_list_with_its_slugs():
    class KubeLike:
        def __init__(self, profile_list):
            self.profile_list = profile_list

        def _init_profile_list(self, profiles):
            # as KubeSpawner: a slug from the display name where none is given
            return [{**p, "slug": p.get("slug") or "from-kubespawner"} for p in profiles]

    async def dynamic(spawner):
        return [{"display_name": "Dynamic"}]

    assert asyncio.run(hook._profiles_of(KubeLike(PROFILES))) == PROFILES
    assert asyncio.run(hook._profiles_of(KubeLike(dynamic))) == [{"display_name": "Dynamic", "slug": "from-kubespawner"}]
    assert asyncio.run(hook._profiles_of(KubeLike(lambda spawner: []))) == []
    assert asyncio.run(hook._profiles_of(SimpleNamespace())) == []


def test_options_from_form():
    assert hook.CustomImages.options_from_form({"image_id": ["dock:7"]}) == {hook.OPTION_SYSTEM: "dock", hook.OPTION_IMAGE: 7}
    # A form of an earlier version: the id, and the system in a field of its own.
    assert hook.CustomImages.options_from_form({"system": ["dock"], "image_id": ["7"]}) == {hook.OPTION_SYSTEM: "dock", hook.OPTION_IMAGE: 7}
    # The standard environment: nothing of the service's.
    assert hook.CustomImages.options_from_form({"image_id": ["standard"]}) == {}
    assert hook.CustomImages.options_from_form({}) == {}
    # One of KubeSpawner's profiles: what KubeSpawner's own form would send.
    assert hook.CustomImages.options_from_form({"image_id": ["profile:gpu"]}) == {"profile": "gpu"}
    for bad in ({"image_id": ["7; rm -rf /"]}, {"image_id": ["a b:7"]}, {"image_id": ["dock:"]}):
        with pytest.raises(hook.LaunchRefused):
            hook.CustomImages.options_from_form(bad)


REVISIONS = {
    7: [
        {"number": 2, "status": "passed", "running": False, "reason": "tag_moved", "reasonText": "tag <moved>", "createdAt": "2026-12-01T10:00:00.000Z"},
        {"number": 1, "status": "passed", "running": False, "reason": "first", "reasonText": "first check", "createdAt": "2026-11-30T10:00:00.000Z"},
    ]
}


def test_form_offers_kept_revisions_below_their_image():
    html = hook.CustomImages("http://x/", "t", "/").render_form(SYSTEMS, IMAGES, revisions=REVISIONS)
    assert html.index('value="dock:7"') < html.index('value="dock:7@2"') < html.index('value="dock:7@1"')
    assert "revision 2 <small>(tag &lt;moved&gt;, 2026-12-01)</small>" in html
    assert 'value="dock:7@2" checked' not in html
    # Revisions of an image the form does not offer are not offered either.
    assert 'value="dock:8@' not in hook.CustomImages("http://x/", "t", "/").render_form(SYSTEMS, IMAGES, revisions={8: REVISIONS[7]})


def test_form_offers_only_revisions_that_passed_and_do_not_run_already():
    class Service(hook.CustomImages):
        async def _get(self, path):
            if path == "systems":
                return SYSTEMS
            if path.startswith("users/ada/images"):
                return [{**IMAGES[0], "status": {"code": "passed"}}]
            if path == "users/ada/revisions":
                revisions = [
                    {"number": 3, "status": "passed", "running": True},
                    {"number": 2, "status": "failed", "running": False},
                    {"number": 1, "status": "passed", "running": False},
                ]
                return [{"imageId": 7, "revisions": revisions}]
            return []

    html = asyncio.run(Service("http://x/", "t", "/").options_form(fake_spawner()))
    assert 'value="dock:7@1"' in html and 'value="dock:7@2"' not in html and 'value="dock:7@3"' not in html


def test_form_of_a_service_without_revisions_offers_the_images():
    class OlderService(hook.CustomImages):
        async def _get(self, path):
            if path == "systems":
                return SYSTEMS
            if path.startswith("users/ada/images"):
                return [{**IMAGES[0], "status": {"code": "passed"}}]
            if path == "users/ada/revisions":
                raise hook.LaunchRefused(404, "Not found")
            return []

    html = asyncio.run(OlderService("http://x/", "t", "/").options_form(fake_spawner()))
    assert 'value="dock:7"' in html and "@" not in html.split('value="dock:7"')[1].split('"')[0]


def test_a_revision_is_chosen_and_asked_for_at_launch():
    options = hook.CustomImages.options_from_form({"image_id": ["dock:7@2"]})
    assert options == {hook.OPTION_SYSTEM: "dock", hook.OPTION_IMAGE: 7, hook.OPTION_REVISION: 2}
    for bad in ({"image_id": ["dock:7@"]}, {"image_id": ["dock:7@x"]}, {"image_id": ["dock:7@2@3"]}, {"image_id": ["dock:@2"]}):
        with pytest.raises(hook.LaunchRefused):
            hook.CustomImages.options_from_form(bad)

    asked = []

    class Service(hook.CustomImages):
        async def _get(self, path):
            asked.append(path)
            return PARAMS

    spawner = fake_spawner(user_options=options)
    asyncio.run(Service("http://x/", "t", "/").launch_parameters(spawner))
    spawner.user_options = {hook.OPTION_SYSTEM: "dock", hook.OPTION_IMAGE: 7}
    asyncio.run(Service("http://x/", "t", "/").launch_parameters(spawner))
    assert asked == ["users/ada/images/7/launch?revision=2", "users/ada/images/7/launch"]


def test_the_standard_environment_is_left_as_the_hub_configures_it():
    spawner = fake_spawner(image="hub/default:1", volumes={"shared": {"bind": "/shared"}}, extra_create_kwargs={"mem_limit": "1g"})
    asyncio.run(hook.CustomImages("http://127.0.0.1:9/", "t", "/").pre_spawn_hook(spawner))
    assert spawner.image == "hub/default:1"
    assert spawner.volumes == {"shared": {"bind": "/shared"}}
    assert spawner.extra_create_kwargs == {"mem_limit": "1g"}
    assert spawner.environment == {}


# -- applying the parameters --------------------------------------------------------
def test_docker_spawner_gets_image_volume_and_user():
    spawner = fake_spawner(volumes={"shared": {"bind": "/shared", "mode": "ro"}})
    hook.apply_docker(spawner, PARAMS)
    assert spawner.image == PARAMS["image"]
    assert spawner.volumes == {
        "shared": {"bind": "/shared", "mode": "ro"},
        "jupyterhub-user-ada-dock-12345678": {"bind": "/home/jovyan/work", "mode": "rw,nocopy"},
    }
    # The system's uid:gid, never the image's own user; the server opens in the data.
    assert spawner.extra_create_kwargs == {"user": "1000:100", "working_dir": "/home/jovyan/work"}


class FakeApi:
    def __init__(self, exists):
        self.exists = exists
        self.calls = []

    async def create_namespaced_secret(self, namespace, body):
        self.calls.append(("create", namespace, body["metadata"]["name"]))
        if self.exists:
            raise ApiConflict(409)

    async def replace_namespaced_secret(self, name, namespace, body):
        self.calls.append(("replace", namespace, name))


class ApiConflict(Exception):
    def __init__(self, status):
        super().__init__(status)
        self.status = status


@pytest.mark.parametrize("exists,expected", [(False, ["create"]), (True, ["create", "replace"])])
def test_kubespawner_secret_created_or_updated(exists, expected):
    api = FakeApi(exists)
    spawner = fake_spawner(api=api, namespace="jhub", image_pull_secrets=[], volume_mounts=[], uid=None, pvc_name="claim-ada")
    asyncio.run(hook.CustomImages("http://x/", "t", "/").apply_kubernetes(spawner, PARAMS))
    assert [c[0] for c in api.calls] == expected
    assert spawner.image_pull_secrets == [{"name": hook.pull_secret_name(spawner)}]
    assert [c[2] for c in api.calls if c[0] == "create"] == [hook.pull_secret_name(spawner)]
    assert spawner.volumes[-1] == {"name": "custom-images-data", "persistentVolumeClaim": {"claimName": "claim-ada"}}
    assert spawner.volume_mounts[-1] == {"name": "custom-images-data", "mountPath": "/home/jovyan/work"}
    assert (spawner.uid, spawner.gid, spawner.working_dir) == (1000, 100, "/home/jovyan/work")


# Names JupyterHub accepts that made invalid Secret names ("@", "_", "%" from escaped_name, a dot at
# the end, too long) or one Secret for two users (differing only in case, or equal once escaped).
PULL_SECRET_USERS = [
    "ada",
    "Ada",
    "ADA",
    "ada@example.org",
    "ada_lovelace",
    "ada.lovelace",
    "ada-lovelace",
    "ada lovelace",
    "ada%20lovelace",
    "zoë",
    "zoe",
    "_",
    "-",
    "ada.",
    "x" * 300,
    "x" * 301,
]
DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def escaped(name):
    """JupyterHub's User.escaped_name."""
    return urllib.parse.quote(name, safe="@~")


@pytest.mark.parametrize("name", PULL_SECRET_USERS)
def test_pull_secret_name_is_a_valid_kubernetes_name(name):
    secret = hook.pull_secret_name(fake_spawner(user=SimpleNamespace(name=name, escaped_name=escaped(name))))
    assert len(secret) <= 253 and DNS_1123_SUBDOMAIN.match(secret), secret


def test_pull_secret_names_differ_for_different_users():
    names = {hook.pull_secret_name(fake_spawner(user=SimpleNamespace(name=n, escaped_name=escaped(n)))) for n in PULL_SECRET_USERS}
    assert len(names) == len(PULL_SECRET_USERS)


def test_modify_pod_hook_wins_over_profile_overrides():
    spawner = fake_spawner(custom_images_launch=PARAMS, pvc_name="claim-ada")
    # A profile's kubespawner_override changed the image after pre_spawn_hook ...
    spawner.image = "profile/default:latest"
    pod = {"spec": {"containers": [{"name": "notebook", "image": spawner.image, "volume_mounts": []}], "volumes": []}}
    hook.modify_pod_hook(spawner, pod)
    # ... but the pod starts the checked image with its mount, uid and pull secret.
    container = pod["spec"]["containers"][0]
    assert container["image"] == PARAMS["image"]
    assert container["volume_mounts"] == [{"name": "custom-images-data", "mountPath": "/home/jovyan/work"}]
    assert container["security_context"] == {"run_as_user": 1000, "run_as_group": 100}
    assert container["working_dir"] == "/home/jovyan/work"
    assert pod["spec"]["image_pull_secrets"] == [{"name": hook.pull_secret_name(spawner)}]


# -- against the running service ---------------------------------------------------
LIVE = os.environ.get("CUSTOM_IMAGES_TEST_API_URL")
live = pytest.mark.skipif(not LIVE, reason="needs the running service (test/e2e/spawn.test.ts)")


def hub_call(method, path, body=None, token=None):
    url = os.environ["CUSTOM_IMAGES_TEST_HUB_API"] + path
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"token {token or os.environ['CUSTOM_IMAGES_TEST_ADMIN_TOKEN']}"})
    try:
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        if e.code == 409:
            return None
        raise


def service_call(method, path, token, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(LIVE + path, data=data, method=method, headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def user():
    hub_call("POST", "/users/pytester")
    token = hub_call("POST", "/users/pytester/tokens", {"note": "pytest"})["token"]
    images = service_call("GET", "users/pytester/images", token)
    return {"name": "pytester", "token": token, "images": images}


@live
def test_options_form_lists_only_checked_images(user):
    systems = service_call("GET", "systems", user["token"])
    image = service_call("POST", "users/pytester/images", user["token"], {"system": systems[0]["slug"], "image": os.environ["CUSTOM_IMAGES_TEST_IMAGE"], "name": "pytest-checked"})
    job = service_call("POST", f"users/pytester/images/{image['id']}/check", user["token"])
    for _ in range(300):
        if service_call("GET", f"checks/{job['id']}", user["token"])["status"] not in ("queued", "running"):
            break
        time.sleep(0.2)
    unchecked = service_call("POST", "users/pytester/images", user["token"], {"system": systems[0]["slug"], "image": os.environ["CUSTOM_IMAGES_TEST_IMAGE"], "name": "pytest-unchecked"})
    api = hook.CustomImages(LIVE, os.environ["CUSTOM_IMAGES_TEST_LAUNCH_TOKEN"], "/services/custom-images/")
    spawner = fake_spawner()
    spawner.user.name = "pytester"
    html = asyncio.run(api.options_form(spawner))
    assert "pytest-checked" in html and "pytest-unchecked" not in html

    # The hook applies the launch parameters of the checked image ...
    spawner.user_options = {hook.OPTION_SYSTEM: systems[0]["slug"], hook.OPTION_IMAGE: image["id"]}
    asyncio.run(api.pre_spawn_hook(spawner))
    assert spawner.image.startswith(os.environ["CUSTOM_IMAGES_TEST_IMAGE"].rsplit(":", 1)[0] + "@sha256:")
    assert spawner.environment["CUSTOM_IMAGES_IMAGE"] == spawner.image

    # ... and refuses the unchecked one with the service's message.
    spawner.user_options = {hook.OPTION_IMAGE: unchecked["id"]}
    with pytest.raises(hook.LaunchRefused) as refused:
        asyncio.run(api.pre_spawn_hook(spawner))
    assert "has not been checked yet" in str(refused.value)
    assert refused.value.status_code == 409


@live
def test_a_wrong_token_is_an_error_not_a_launch():
    api = hook.CustomImages(LIVE, "not-a-token", "/")
    spawner = fake_spawner(user_options={hook.OPTION_IMAGE: 1})
    with pytest.raises(hook.LaunchRefused) as refused:
        asyncio.run(api.pre_spawn_hook(spawner))
    assert refused.value.status_code == 502
