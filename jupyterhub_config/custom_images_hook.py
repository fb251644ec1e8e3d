"""Spawner integration for the custom-images service.

Use it from jupyterhub_config.py::

    from custom_images_hook import CustomImages

    custom_images = CustomImages(
        api_url="http://127.0.0.1:10101/services/custom-images/api/v1/",
        token=os.environ["CUSTOM_IMAGES_LAUNCH_TOKEN"],   # a token with custom:custom-images:launch
        manage_url="/services/custom-images/",
    )
    custom_images.configure(c)

It renders the spawn form (the hub's standard environment first, then the
user's checked images, and a link to manage images), turns the form into
user_options, and in pre_spawn_hook asks the service for the launch
parameters and applies them. The standard environment is left exactly as the
hub configures it. For a custom image:

- DockerSpawner: image, the data volume, extra_create_kwargs "user" (uid:gid)
  and "working_dir" (the data's path, so that the server opens there),
  pull_policy "never" (the service pulled the image), environment;
- KubeSpawner: image, image_pull_secrets (the Secret is created or updated),
  volumes, volume_mounts, uid, gid, working_dir, environment. KubeSpawner
  applies profile overrides after pre_spawn_hook (load_user_options inside
  start), so the values are applied again in modify_pod_hook, which runs last.

With KubeSpawner's profile_list (z2jh's singleuser.profileList), the form offers
the profiles first, in their order, with the default profile chosen; a profile
choice becomes user_options {"profile": slug}, which KubeSpawner applies as
always (profile_options, the nested choices, are not offered here).

A refusal (the check failed, the image changed, the system is disabled, ...)
raises an error whose message the hub shows the user.

Runs on JupyterHub 3.x, 4.x and 5.x (Bootstrap 3 markup before 5.0, Bootstrap 5
from 5.0). Needs only what JupyterHub itself needs (tornado).
"""
import base64
import hashlib
import inspect
import json
import re
from html import escape
from urllib.parse import quote, urlencode

from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

try:
    import jupyterhub

    JUPYTERHUB_MAJOR = int(jupyterhub.__version__.split(".")[0])
except Exception:  # pragma: no cover - only outside a hub
    JUPYTERHUB_MAJOR = 3

#: user_options keys this module sets
OPTION_SYSTEM = "custom_images_system"
OPTION_IMAGE = "custom_images_image_id"
#: one of the image's kept revisions instead of what it runs now ("system:id@revision" in the form)
OPTION_REVISION = "custom_images_revision"
#: the form's value for the hub's own image
STANDARD = "standard"
#: a profile of KubeSpawner's profile_list, "profile:<slug>" in the form
PROFILE_PREFIX = "profile:"


class LaunchRefused(web.HTTPError):
    """The service refused the launch; the message is meant for the researcher."""

    def __init__(self, status, message):
        super().__init__(status, log_message=message.replace("%", "%%"))
        # JupyterHub replaces a failed spawn's message by a generic one (reason
        # "error") but shows jupyterhub_html_message on its error page as well.
        self.jupyterhub_message = message
        self.jupyterhub_html_message = f'<p class="custom-images-refusal">{escape(message)}</p>'
        self.message = message

    def __str__(self):
        return self.message


def _is_kubespawner(spawner):
    return any(cls.__name__ == "KubeSpawner" for cls in type(spawner).__mro__)


def _is_dockerspawner(spawner):
    return any(cls.__name__ == "DockerSpawner" for cls in type(spawner).__mro__)


class CustomImages:
    """The service's API, as the spawner hooks use it."""

    def __init__(self, api_url, token, manage_url, timeout=120, bootstrap5=None, standard_label=None):
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self.token = token
        self.manage_url = manage_url
        self.timeout = timeout
        self.bootstrap5 = JUPYTERHUB_MAJOR >= 5 if bootstrap5 is None else bootstrap5
        #: how the form names the hub's own environment (default: "Standard environment" and the spawner's image)
        self.standard_label = standard_label

    # -- HTTP -------------------------------------------------------------
    async def _get(self, path):
        request = HTTPRequest(
            self.api_url + path,
            headers={"Authorization": f"token {self.token}", "Accept": "application/json"},
            request_timeout=self.timeout,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            message = None
            if e.response is not None and e.response.body:
                try:
                    message = json.loads(e.response.body).get("message")
                except ValueError:
                    message = None
            if e.code in (404, 409, 503) and message:
                raise LaunchRefused(e.code, message) from None
            raise LaunchRefused(
                502, f"The custom images service answered {e.code}: {message or e.message}"
            ) from None
        except OSError as e:
            raise LaunchRefused(502, f"The custom images service cannot be reached ({e}).") from None
        return json.loads(response.body)

    # -- the form ----------------------------------------------------------
    async def options_form(self, spawner):
        """HTML for the spawn form: the standard environment, then the user's checked images."""
        name = spawner.user.name
        systems = await self._get("systems")
        images = await self._get(f"users/{quote(name, safe='')}/images?" + urlencode({"status": "passed"}))
        shared = await self._shared_with(name)
        revisions = await self._revisions_of(name)
        profiles = await _profiles_of(spawner)
        return self.render_form(
            systems,
            images,
            standard=self.standard_label or _standard_label(spawner),
            profiles=profiles,
            shared=shared,
            revisions=revisions,
        )

    async def _revisions_of(self, name):
        """The kept revisions of the user's images that passed their check, other than the one each runs,
        by image id; none from a service that does not keep revisions (an older version)."""
        try:
            lists = await self._get(f"users/{quote(name, safe='')}/revisions")
        except LaunchRefused as e:
            if e.status_code in (404, 502):
                return {}
            raise
        return {
            entry["imageId"]: [r for r in entry["revisions"] if r["status"] == "passed" and not r["running"]]
            for entry in lists
        }

    async def _shared_with(self, name):
        """Images published for everyone and shared with the user's groups; none from a service
        that cannot list them (an older version), so that the form still offers the user's own."""
        try:
            return await self._get(f"users/{quote(name, safe='')}/shared?" + urlencode({"status": "passed"}))
        except LaunchRefused as e:
            if e.status_code in (404, 502):
                return []
            raise

    def render_form(self, systems, images, standard="Standard environment", profiles=None, shared=(), revisions=None):
        """The hub's standard environment first (chosen by default, as profile lists do), or
        the hub's profiles in its stead; then the images published for everyone, the user's own
        checked images (each followed by its other kept revisions that passed, by image id in
        `revisions`) and those others share with them, each with its system: an image implies
        where it runs."""
        manage = escape(self.manage_url)
        enabled = {s["slug"]: s for s in systems if s.get("enabled", True)}
        published = [i for i in shared if i.get("access") == "published" and i["system"]["slug"] in enabled]
        others = [i for i in shared if i.get("access") != "published" and i["system"]["slug"] in enabled]
        usable = [i for i in images if i["system"]["slug"] in enabled]
        parts = ['<div class="custom-images-form">']
        parts.append(f'<fieldset class="{"mb-3" if self.bootstrap5 else "form-group"}"><legend>Environment</legend>')
        if profiles:
            chosen = next((p for p in profiles if p.get("default")), profiles[0])
            for profile in profiles:
                label = escape(str(profile.get("display_name", profile["slug"])))
                if profile.get("description"):
                    label += f' <small>{escape(str(profile["description"]))}</small>'
                parts.append(self._choice(PROFILE_PREFIX + profile["slug"], label, checked=profile is chosen))
        else:
            parts.append(self._choice(STANDARD, escape(standard), checked=True))
        for image in published:
            about = f'published{": " + image["description"] if image.get("description") else ""}'
            parts.append(self._image_choice(image, "custom-images-published", about))
        for image in usable:
            parts.append(self._image_choice(image, "custom-images-start", (image.get("start") or {}).get("text")))
            for revision in (revisions or {}).get(image["id"], []):
                parts.append(self._revision_choice(image, revision))
        for image in others:
            parts.append(self._image_choice(image, "custom-images-shared", f'shared by {image["owner"]}'))
        parts.append("</fieldset>")
        if not enabled:
            parts.append("<p>No system offers custom images at the moment.</p>")
        elif not usable and not published and not others:
            parts.append(
                f'<p>You have no checked custom image yet. <a href="{manage}" target="_blank">Add and check one in custom images</a>, then reload this page.</p>'
            )
        else:
            parts.append(f'<p><a href="{manage}" target="_blank">Manage your custom images</a></p>')
        parts.append("</div>")
        return "".join(parts)

    def _image_choice(self, image, note_class, note):
        """An image as a choice: its name, reference and system, and a note after them, then its
        owner's description (`description` of one's own image, `ownerDescription` of another's):
        all of it the researchers' text, escaped here."""
        label = f'{escape(image["name"])} <code>{escape(image["image"])}</code> <small>({escape(image["system"]["displayName"])})</small>'
        if note:
            label += f' <small class="{note_class}">· {escape(note)}</small>'
        described = image.get("ownerDescription") if "ownerDescription" in image else image.get("description")
        if described:
            label += f'<br><small class="custom-images-description">{escape(str(described))}</small>'
        return self._choice(f'{image["system"]["slug"]}:{image["id"]}', label, checked=False)

    def _revision_choice(self, image, revision):
        """A kept revision of one of the user's images, below it: started pinned to that content."""
        number = int(revision["number"])
        when = escape(str(revision.get("createdAt", ""))[:10])
        reason = escape(str(revision.get("reasonText", revision.get("reason", ""))))
        label = (
            f'<span class="custom-images-revision">&#8627; {escape(image["name"])}, revision {number}'
            f' <small>({reason}{", " + when if when else ""})</small></span>'
        )
        return self._choice(f'{image["system"]["slug"]}:{image["id"]}@{number}', label, checked=False)

    def _choice(self, value, html_label, checked):
        value = escape(value)
        mark = " checked" if checked else ""
        if self.bootstrap5:
            return (
                f'<div class="form-check"><input class="form-check-input" type="radio" name="image_id" id="ci-image-{value}" value="{value}"{mark}>'
                f'<label class="form-check-label" for="ci-image-{value}">{html_label}</label></div>'
            )
        return f'<div class="radio"><label><input type="radio" name="image_id" value="{value}"{mark}> {html_label}</label></div>'

    @staticmethod
    def options_from_form(formdata):
        """The chosen image ("system:id", or "system:id@revision" for one of its kept revisions) as
        user_options; nothing for the standard environment, {"profile": slug} for one of KubeSpawner's
        profiles."""
        choice = (formdata.get("image_id") or [STANDARD])[0]
        if choice == STANDARD:
            return {}
        if choice.startswith(PROFILE_PREFIX):
            return {"profile": choice[len(PROFILE_PREFIX) :]}
        system, _, chosen = choice.rpartition(":")
        image_id, at, revision = chosen.partition("@")
        if (
            not image_id.isdigit()
            or (at and not revision.isdigit())
            or (system and not all(ch.isalnum() or ch in "._-" for ch in system))
        ):
            raise LaunchRefused(400, "The chosen image is not valid; reload the page.")
        options = {OPTION_SYSTEM: system or (formdata.get("system") or [""])[0], OPTION_IMAGE: int(image_id)}
        if at:
            options[OPTION_REVISION] = int(revision)
        return options

    # -- the launch --------------------------------------------------------
    async def launch_parameters(self, spawner):
        options = spawner.user_options or {}
        image_id = options.get(OPTION_IMAGE)
        if image_id is None:
            return None
        name = quote(spawner.user.name, safe="")
        revision = options.get(OPTION_REVISION)
        query = "" if revision is None else "?" + urlencode({"revision": int(revision)})
        params = await self._get(f"users/{name}/images/{int(image_id)}/launch{query}")
        chosen = options.get(OPTION_SYSTEM)
        if chosen and params["system"] != chosen:
            raise LaunchRefused(
                409,
                f"The chosen image was moved to the system {params['system']} after this page was loaded. Reload the page and choose it again.",
            )
        return params

    async def pre_spawn_hook(self, spawner):
        params = await self.launch_parameters(spawner)
        if params is None:
            return
        spawner.custom_images_launch = params
        spawner.log.info(
            "custom-images: launching %s for %s on %s (mount %s at %s, uid %s, gid %s, pull %s)",
            params["image"],
            spawner.user.name,
            params["system"],
            params["mount"]["volume"],
            params["mount"]["target"],
            params["uid"],
            params["gid"],
            params["pull"]["kind"],
        )
        spawner.environment = {**(spawner.environment or {}), **params["env"]}
        if _is_kubespawner(spawner):
            await self.apply_kubernetes(spawner, params)
        else:
            apply_docker(spawner, params)

    async def apply_kubernetes(self, spawner, params):
        spawner.image = params["image"]
        spawner.uid = params["uid"]
        spawner.gid = params["gid"]
        spawner.working_dir = params["mount"]["target"]
        secret = params["pull"].get("dockerconfigjson")
        if secret:
            secret_name = await ensure_pull_secret(spawner, secret)
            spawner.image_pull_secrets = _add_named(spawner.image_pull_secrets, secret_name)
        volume, mount = kubernetes_volume(spawner, params)
        spawner.volumes = _replace_named(spawner.volumes, volume)
        spawner.volume_mounts = _replace_named(spawner.volume_mounts, mount)

    def configure(self, c):
        """Sets the spawner's options form and hooks in a JupyterHub config object."""
        c.Spawner.options_form = self.options_form
        c.Spawner.options_from_form = CustomImages.options_from_form
        c.Spawner.pre_spawn_hook = self.pre_spawn_hook
        c.KubeSpawner.modify_pod_hook = modify_pod_hook
        _read_our_form_in_dockerspawner()


def _read_our_form_in_dockerspawner():
    """DockerSpawner defines options_from_form as a method, which shadows the
    config value set in configure(); it reads only an "image" field. Our form
    is read by ours, any other form by DockerSpawner's own."""
    try:
        from dockerspawner import DockerSpawner
    except ImportError:
        return
    own = DockerSpawner.__dict__.get("options_from_form")
    if own is None or getattr(own, "custom_images", False):
        return

    def options_from_form(self, formdata):
        if "image_id" in formdata:
            return CustomImages.options_from_form(formdata)
        return own(self, formdata)

    options_from_form.custom_images = True
    DockerSpawner.options_from_form = options_from_form


# -- DockerSpawner ----------------------------------------------------------
def apply_docker(spawner, params):
    """Sets image, the data volume, the user and the working directory on a DockerSpawner."""
    spawner.image = params["image"]
    volumes = dict(getattr(spawner, "volumes", None) or {})
    # The service made the volume, with the image's content there and the server's user as its owner;
    # "nocopy" keeps Docker from copying the image's directory (and its owner, often root) over it again.
    volumes[params["mount"]["volume"]] = {"bind": params["mount"]["target"], "mode": "rw,nocopy"}
    spawner.volumes = volumes
    kwargs = dict(getattr(spawner, "extra_create_kwargs", None) or {})
    # The system's uid:gid, whatever the image's USER says; the server opens in the user's data.
    kwargs["user"] = f'{params["uid"]}:{params["gid"]}'
    kwargs["working_dir"] = params["mount"]["target"]
    spawner.extra_create_kwargs = kwargs
    if params["pull"]["kind"] == "docker" and params["pull"].get("pulled") and _is_dockerspawner(spawner):
        # The service pulled the image with the user's credentials; DockerSpawner must not try again.
        spawner.pull_policy = "never"


async def _profiles_of(spawner):
    """KubeSpawner's profile_list (a list, or a callable that returns one), with the slugs
    KubeSpawner itself gives profiles that have none; [] for other spawners."""
    profiles = getattr(spawner, "profile_list", None)
    if callable(profiles):
        profiles = profiles(spawner)
        if inspect.isawaitable(profiles):
            profiles = await profiles
    if not profiles:
        return []
    init = getattr(spawner, "_init_profile_list", None)
    if callable(init):
        return init(profiles)
    return [{**p, "slug": p.get("slug") or str(p.get("display_name", "")).lower().replace(" ", "-")} for p in profiles]


def _standard_label(spawner):
    image = getattr(spawner, "image", None)
    return f"Standard environment ({image})" if isinstance(image, str) and image else "Standard environment"


# -- KubeSpawner ------------------------------------------------------------
VOLUME_NAME = "custom-images-data"


def kubernetes_volume(spawner, params):
    claim = getattr(spawner, "pvc_name", None) or params["mount"]["volume"]
    volume = {"name": VOLUME_NAME, "persistentVolumeClaim": {"claimName": claim}}
    mount = {"name": VOLUME_NAME, "mountPath": params["mount"]["target"]}
    return volume, mount


def _name_of(item):
    return item.get("name") if isinstance(item, dict) else getattr(item, "name", None)


def _replace_named(items, new):
    return [i for i in (items or []) if _name_of(i) != new["name"]] + [new]


def _add_named(items, name):
    names = [i if isinstance(i, str) else _name_of(i) for i in (items or [])]
    return list(items or []) + ([] if name in names else [{"name": name}])


def pull_secret_name(spawner):
    """The name of the user's image pull Secret: a valid Kubernetes object name (a DNS-1123
    subdomain: lower-case letters, digits and "-", at most 253 characters) for every hub name,
    and a different one for every other hub name. Hub names may hold "@", "_", "." or upper
    case, and differ only in case; the full SHA-256 of the exact name tells them apart, the
    readable part in front only helps people find a user's Secret."""
    name = spawner.user.name
    readable = re.sub(r"[^a-z0-9]+", "-", name.lower())[:40].strip("-")
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    return "-".join(part for part in ("custom-images-pull", readable, digest) if part)


async def ensure_pull_secret(spawner, dockerconfigjson):
    """Creates or updates the user's image pull Secret; returns its name."""
    name = pull_secret_name(spawner)
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "custom-images"}},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(dockerconfigjson.encode()).decode()},
    }
    api = spawner.api
    try:
        await api.create_namespaced_secret(namespace=spawner.namespace, body=body)
    except Exception as e:
        if getattr(e, "status", None) != 409:
            raise
        await api.replace_namespaced_secret(name=name, namespace=spawner.namespace, body=body)
    return name


def _set(obj, key, value):
    if isinstance(obj, dict):
        obj[key] = value
    else:
        setattr(obj, key, value)


def _get(obj, key):
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def modify_pod_hook(spawner, pod):
    """Applies the launch parameters to the pod last, after any profile overrides."""
    params = getattr(spawner, "custom_images_launch", None)
    if not params:
        return pod
    spec = _get(pod, "spec")
    containers = _get(spec, "containers") or []
    notebook = next((x for x in containers if _get(x, "name") == "notebook"), containers[0] if containers else None)
    if notebook is not None:
        _set(notebook, "image", params["image"])
        volume, mount = kubernetes_volume(spawner, params)
        _set(notebook, "volume_mounts", _replace_named(_get(notebook, "volume_mounts"), mount))
        _set(spec, "volumes", _replace_named(_get(spec, "volumes"), volume))
        _set(notebook, "working_dir", params["mount"]["target"])
        security = _get(notebook, "security_context") or {}
        _set(security, "run_as_user", params["uid"])
        _set(security, "run_as_group", params["gid"])
        _set(notebook, "security_context", security)
    if params["pull"].get("dockerconfigjson"):
        _set(spec, "image_pull_secrets", _add_named(_get(spec, "image_pull_secrets"), pull_secret_name(spawner)))
    return pod
