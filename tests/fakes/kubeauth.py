"""Who may do what on the stand-in API server, decided as a real one decides it.

A pod on a cluster reaches the API with what the kubelet mounted for it: a token bound to
its ServiceAccount and to the pod, the cluster's CA, its namespace. The API server checks
the token (authentication: 401 when it is not one it issued), then asks RBAC whether the
Roles bound to that ServiceAccount allow the request's verb on its resource and
subresource in its namespace (authorization: 403 with a Status naming all of that). This
module holds those parts, as pure functions where no state is needed:

- ClusterPKI: a CA and the API server's certificate (the ca.crt pods trust);
- TokenIssuer: RS256 JWTs with the claims of bound service-account tokens;
- request_attributes(): what the API server's RequestInfoFactory makes of a request
  (verb, resource, subresource, name, namespace);
- RBAC: Roles, ClusterRoles and their bindings, and the RBAC authorizer's decision;
- forbidden_status() / UNAUTHORIZED: the API server's error bodies
  (k8s.io/apiserver responsewriters.forbiddenMessage, apierrors.NewForbidden);
- should_automount() / service_account_volume(): the ServiceAccount admission plugin's
  decision and the projected volume it adds.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import secrets
import ssl
import time
import uuid
from dataclasses import dataclass, field

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
ISSUER = "https://kubernetes.default.svc.cluster.local"
# What the admission plugin asks for (an hour and 7 s: the kubelet refreshes before).
TOKEN_EXPIRATION = 3607

UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}


# --- certificates ----------------------------------------------------------------------


class ClusterPKI:
    """The cluster's CA and the API server's serving certificate for `hosts`."""

    def __init__(self, hosts: list[str]):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )  # fmt: skip
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [
            x509.DNSName(n)
            for n in ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost")
        ]
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        self.ca_pem = ca.public_bytes(pem).decode()
        self.cert_pem = cert.public_bytes(pem).decode()
        self.key_pem = key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    def server_context(self, folder) -> ssl.SSLContext:
        """The API server's TLS context (the ssl module loads keys from files only)."""
        cert, key = folder / "apiserver.crt", folder / "apiserver.key"
        cert.write_text(self.cert_pem)
        key.write_text(self.key_pem)
        key.chmod(0o600)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """What a client that trusts the cluster's CA (and nothing else) verifies with."""
        return ssl.create_default_context(cadata=self.ca_pem)


# --- tokens ---------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Bound service-account tokens: RS256 JWTs with the claims the API server's
    TokenRequest gives (sub system:serviceaccount:ns:name, kubernetes.io.pod...)."""

    def __init__(self):
        from cryptography.hazmat.primitives.asymmetric import rsa

        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = _b64(secrets.token_bytes(16))

    def issue(
        self,
        namespace: str,
        service_account: dict,
        pod: dict | None = None,
        expiration: int = TOKEN_EXPIRATION,
        node: str | None = None,
    ) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        sa_meta = service_account["metadata"]
        claims: dict = {
            "aud": [ISSUER],
            "exp": now + expiration,
            "iat": now,
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": sa_meta["name"], "uid": sa_meta["uid"]},
            },
            "nbf": now,
            "sub": f"system:serviceaccount:{namespace}:{sa_meta['name']}",
        }
        if pod is not None:
            claims["kubernetes.io"]["pod"] = {
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
            }
        if node:
            claims["kubernetes.io"]["node"] = {
                "name": node,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, node)),
            }
        header = {"alg": "RS256", "kid": self.kid}
        signing_input = (
            _b64(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64(signature)

    def verify(self, token: str) -> dict | None:
        """The claims of a token this issuer signed that is valid now; None otherwise."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head, body, sig = token.split(".")
            header = json.loads(_unb64(head))
            claims = json.loads(_unb64(body))
            if header.get("alg") != "RS256" or header.get("kid") != self.kid:
                return None
            self._key.public_key().verify(
                _unb64(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except (ValueError, InvalidSignature, UnicodeDecodeError):
            return None
        now = time.time()
        if claims.get("iss") != ISSUER or ISSUER not in (claims.get("aud") or []):
            return None
        if not (claims.get("nbf", 0) - 60 <= now < claims.get("exp", 0)):
            return None
        return claims


# --- request attributes ------------------------------------------------------------------


@dataclass(frozen=True)
class Attributes:
    """What the authorizer is asked about (k8s.io/apiserver authorizer.Attributes)."""

    verb: str
    path: str
    resource_request: bool = False
    api_group: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def _true(value: str | None) -> bool:
    return value in ("1", "t", "T", "true", "TRUE", "True")


def request_attributes(method: str, path: str, query: dict) -> Attributes:
    """The RequestInfoFactory's reading of a request: /api/v1 and /apis/<group>/<version>
    paths are resource requests, anything else (/version, /healthz) is not."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return Attributes(verb=method.lower(), path=path)
    if not rest:  # discovery: /api/v1
        return Attributes(verb=method.lower(), path=path)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    elif rest[0] == "namespaces" and len(rest) == 2:
        # the Namespace object itself
        namespace, rest = rest[1], ["namespaces", rest[1]]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if method == "GET":
        if _true(query.get("watch")):
            verb = "watch"
        else:
            verb = "get" if name else "list"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "HEAD": "get"}.get(
            method, method.lower()
        )
    if verb in ("list", "watch") and not name:
        # A list or watch of one object by field selector is authorized for that name.
        for term in (query.get("fieldSelector") or "").split(","):
            key, _, value = term.partition("=")
            if key.strip() == "metadata.name":
                name = value.lstrip("=").strip()
    return Attributes(
        verb=verb,
        path=path,
        resource_request=True,
        api_group=group,
        namespace=namespace,
        resource=resource,
        subresource=subresource,
        name=name,
    )


# --- RBAC ------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()


ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))
ADMIN = User(
    "kubernetes-admin", ("kubeadm:cluster-admins", "system:masters", "system:authenticated")
)


def service_account_user(namespace: str, name: str) -> User:
    return User(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


def _rule_allows(rule: dict, attrs: Attributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.resource_request:
        return any(
            u == attrs.path or u == "*" or (u.endswith("*") and attrs.path.startswith(u[:-1]))
            for u in rule.get("nonResourceURLs") or []
        )
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attrs.api_group not in groups:
        return False
    combined = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    resources = rule.get("resources") or []
    if not any(
        r in ("*", combined)
        or (attrs.subresource and r == f"*/{attrs.subresource}")
        or (r == f"{attrs.resource}/*" and attrs.subresource)
        for r in resources
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def _subject_matches(subject: dict, user: User, binding_ns: str) -> bool:
    kind = subject.get("kind")
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_ns
        return user.name == f"system:serviceaccount:{ns}:{subject.get('name')}"
    if kind == "User":
        return user.name == subject.get("name")
    if kind == "Group":
        return subject.get("name") in user.groups
    return False


# The API server's bootstrap policy, as far as these tests meet it (plugin/pkg/auth/
# authorizer/rbac/bootstrappolicy): admins, the public info, and discovery.
_BOOTSTRAP_CLUSTER_ROLES = {
    "cluster-admin": [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]},
    ],
    "system:public-info-viewer": [
        {
            "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
            "verbs": ["get"],
        }
    ],
    "system:discovery": [
        {
            "nonResourceURLs": [
                "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                "/openapi/*", "/readyz", "/version", "/version/",
            ],
            "verbs": ["get"],
        }
    ],
}  # fmt: skip
_BOOTSTRAP_BINDINGS = [
    ("cluster-admin", [{"kind": "Group", "name": "system:masters"}]),
    (
        "system:public-info-viewer",
        [
            {"kind": "Group", "name": "system:authenticated"},
            {"kind": "Group", "name": "system:unauthenticated"},
        ],
    ),
    ("system:discovery", [{"kind": "Group", "name": "system:authenticated"}]),
]


@dataclass
class RBAC:
    """Roles and bindings by (namespace, name); ClusterRoles and ClusterRoleBindings by
    name. The bootstrap ClusterRoles are there from the start."""

    roles: dict[tuple[str, str], dict] = field(default_factory=dict)
    role_bindings: dict[tuple[str, str], dict] = field(default_factory=dict)
    cluster_roles: dict[str, dict] = field(default_factory=dict)
    cluster_role_bindings: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self):
        for name, rules in _BOOTSTRAP_CLUSTER_ROLES.items():
            self.cluster_roles[name] = {"metadata": {"name": name}, "rules": rules}
        for name, subjects in _BOOTSTRAP_BINDINGS:
            self.cluster_role_bindings[name] = {
                "metadata": {"name": name},
                "subjects": subjects,
                "roleRef": {"kind": "ClusterRole", "name": name},
            }

    def add(self, doc: dict, default_namespace: str = "default") -> None:
        kind, meta = doc["kind"], doc["metadata"]
        ns = meta.get("namespace") or default_namespace
        if kind == "Role":
            self.roles[(ns, meta["name"])] = doc
        elif kind == "RoleBinding":
            self.role_bindings[(ns, meta["name"])] = doc
        elif kind == "ClusterRole":
            self.cluster_roles[meta["name"]] = doc
        elif kind == "ClusterRoleBinding":
            self.cluster_role_bindings[meta["name"]] = doc
        else:
            raise ValueError(f"not an RBAC object: {kind}")

    def authorize(self, user: User, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason): the RBAC authorizer visits every binding that applies;
        a binding whose role is missing is an error it reports when it denies."""
        errors = []
        bindings = [("", b) for b in self.cluster_role_bindings.values()]
        if attrs.namespace:
            bindings += [
                (ns, b) for (ns, _), b in self.role_bindings.items() if ns == attrs.namespace
            ]
        for ns, binding in bindings:
            if not any(_subject_matches(s, user, ns) for s in binding.get("subjects") or []):
                continue
            ref = binding["roleRef"]
            if ref["kind"] == "Role":
                role = self.roles.get((ns, ref["name"]))
                missing = f'role.rbac.authorization.k8s.io "{ref["name"]}" not found'
            else:
                role = self.cluster_roles.get(ref["name"])
                missing = f'clusterrole.rbac.authorization.k8s.io "{ref["name"]}" not found'
            if role is None:
                errors.append(missing)
                continue
            if any(_rule_allows(rule, attrs) for rule in role.get("rules") or []):
                return True, ""
        if not errors:
            return False, ""
        return False, "RBAC: " + (errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]")


def forbidden_message(user: User, attrs: Attributes) -> str:
    """responsewriters.forbiddenMessage."""
    if not attrs.resource_request:
        return f'User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
    resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return (
        f'User "{user.name}" cannot {attrs.verb} resource "{resource}" '
        f'in API group "{attrs.api_group}" {where}'
    )


def forbidden_status(user: User, attrs: Attributes, reason: str = "") -> dict:
    """The 403 Status (apierrors.NewForbidden of the group-resource and name)."""
    err = forbidden_message(user, attrs) + (f": {reason}" if reason else "")
    if not attrs.resource_request:
        message = f"forbidden: {err}"
        details: dict = {}
    else:
        qualified = attrs.resource + (f".{attrs.api_group}" if attrs.api_group else "")
        message = (
            f'{qualified} "{attrs.name}" is forbidden: {err}'
            if attrs.name
            else f"{qualified} is forbidden: {err}"
        )
        details = {"kind": attrs.resource}
        if attrs.name:
            details["name"] = attrs.name
        if attrs.api_group:
            details["group"] = attrs.api_group
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "code": 403,
    }
    if details:
        status["details"] = details
    return status


# --- the ServiceAccount admission plugin ---------------------------------------------------


def should_automount(service_account: dict, pod_spec: dict) -> bool:
    """The pod's automountServiceAccountToken wins, then its ServiceAccount's, else true
    (plugin/pkg/admission/serviceaccount shouldAutomount)."""
    if pod_spec.get("automountServiceAccountToken") is not None:
        return bool(pod_spec["automountServiceAccountToken"])
    if service_account.get("automountServiceAccountToken") is not None:
        return bool(service_account["automountServiceAccountToken"])
    return True


def service_account_volume() -> tuple[dict, dict]:
    """The projected volume the plugin adds (kube-api-access-<5 random>) and its mount."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's utilrand alphabet
    suffix = "".join(secrets.choice(alphabet) for _ in range(5))
    name = f"kube-api-access-{suffix}"
    volume = {
        "name": name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
                {
                    "configMap": {
                        "name": ROOT_CA_CONFIG_MAP,
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }
    mount = {"name": name, "readOnly": True, "mountPath": SA_MOUNT}
    return volume, mount
