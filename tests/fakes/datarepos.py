"""Stand-ins for the data repositories and forges of the data providers, on 127.0.0.1.

Each site runs on its own port and answers the calls the providers (and repo2docker's
content providers) make, shaped as the sites document them:

- `doi`: the DOI resolver: /<DOI> redirects (302) to the landing page;
  /api/handles/<DOI> is the handle API repo2docker asks ({"responseCode": 1, "values": ...}).
- `zenodo`: /records/<id> (page; a concept id's redirects to the latest version),
  /api/records/<id> (Zenodo's record JSON; a concept id redirects to the latest version;
  410 for a deleted record), /api/records/<id>/files and .../files/<key>/content.
- `figshare`: /v2/articles/<id>/versions and /v2/articles/<id>/versions/<n>.
- `dataverse`: /dataset.xhtml (page), /api/datasets/:persistentId?persistentId=doi:...
- `hydroshare`: /resource/<id> (page), /hsapi/resource/<id>/scimeta/elements.
- `ckan`: /dataset/<name> (page), /api/3/action/{status_show,package_show,activity_data_show}.
- `swh`: /api/1/directory/<sha1>/ and /api/1/revision/<sha1>/.
- `gitea`: /api/v1/repos/<owner>/<repo> (case-insensitive, answers the canonical
  full_name), .../commits?sha=<ref>&limit=1 and .../git/commits/<sha>.

Knobs: `status[site]` answers every request to that site with this status (429 and
503 carry Retry-After), `requests` records (site, path with query).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from aiohttp import web

from tests.fakes.forge import FakeRepo

SITES = ("doi", "zenodo", "figshare", "dataverse", "hydroshare", "ckan", "swh", "gitea")


@dataclass
class ZenodoRecord:
    files: dict[str, bytes] = field(default_factory=lambda: {"README.md": b"hello\n"})
    access_right: str = "open"
    embargo_date: str | None = None
    deleted: bool = False
    doi: str = ""


@dataclass
class Dataset:
    """A Dataverse dataset's latest version."""

    id: int
    major: int | None = 1
    minor: int = 0
    state: str = "RELEASED"
    restricted: bool = False


@dataclass
class CKANDataset:
    modified: str = "2024-04-02T02:10:31.123456"
    private: bool = False
    state: str = "active"
    activities: dict[str, str] = field(default_factory=dict)  # id -> metadata_modified


class FakeDataRepos:
    def __init__(self):
        self.url: dict[str, str] = {}
        self.dois: dict[str, str] = {}  # lowercased DOI -> landing URL
        self.zenodo: dict[str, ZenodoRecord] = {}
        self.zenodo_concepts: dict[str, str] = {}  # concept id -> latest record id
        self.figshare: dict[str, dict] = {}  # article id -> {"versions": [..], "embargo": ..}
        self.dataverse: dict[str, Dataset] = {}  # DOI -> dataset
        self.hydroshare: dict[str, dict] = {}  # id -> {"modified": ..., "private": ...}
        self.ckan: dict[str, CKANDataset] = {}
        self.swh: set[tuple[str, str]] = set()  # ("directory"|"revision", sha1)
        self.gitea: dict[str, tuple[str, FakeRepo]] = {}  # lowercased -> (full name, repo)
        self.status: dict[str, int] = {}
        self.requests: list[tuple[str, str]] = []
        self._runners: list[web.AppRunner] = []

    # --- content -------------------------------------------------------------------

    def add_zenodo(self, record_id: str, concept: str | None = None, **kw) -> ZenodoRecord:
        """A Zenodo record with DOI 10.5281/zenodo.<id> (and its concept DOI)."""
        record = ZenodoRecord(doi=f"10.5281/zenodo.{record_id}", **kw)
        self.zenodo[record_id] = record
        self.dois[record.doi] = f"{self.url['zenodo']}/records/{record_id}"
        if concept:
            self.zenodo_concepts[concept] = record_id
            # the concept record's page, which redirects to the latest version
            self.dois[f"10.5281/zenodo.{concept}"] = f"{self.url['zenodo']}/records/{concept}"
        return record

    def add_figshare(self, article: str, versions=(1,), embargo: bool = False) -> None:
        self.figshare[article] = {"versions": list(versions), "embargo": embargo}
        doi = f"10.6084/m9.figshare.{article}"
        self.dois[doi] = f"{self.url['figshare']}/articles/dataset/x/{article}"

    def add_dataverse(self, doi: str, dataset: Dataset) -> None:
        self.dataverse[doi] = dataset
        self.dois[doi.lower()] = (
            f"{self.url['dataverse']}/dataset.xhtml?persistentId=doi:{quote(doi, safe='/')}"
        )

    def add_hydroshare(self, resource: str, modified: str, private: bool = False) -> None:
        self.hydroshare[resource] = {"modified": modified, "private": private}
        self.dois[f"10.4211/hs.{resource}"] = f"{self.url['hydroshare']}/resource/{resource}"

    def add_gitea(self, full_name: str, repo: FakeRepo) -> None:
        self.gitea[full_name.lower()] = (full_name, repo)

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> FakeDataRepos:
        for site in SITES:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._dispatch(site))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            host, port = runner.addresses[0][:2]
            self.url[site] = f"http://{host}:{port}"
            self._runners.append(runner)
        return self

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners = []

    async def __aenter__(self) -> FakeDataRepos:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def _dispatch(self, site: str):
        async def handle(request: web.Request) -> web.StreamResponse:
            path = request.raw_path
            self.requests.append((site, path))
            status = self.status.get(site)
            if status:
                headers = {"Retry-After": "30"} if status in (429, 503) else {}
                return _json({"message": "unavailable", "status": status}, status, headers)
            return getattr(self, f"_{site}")(request, unquote(request.path))

        return handle

    # --- the sites -----------------------------------------------------------------

    def _doi(self, request, path: str) -> web.StreamResponse:
        if path.startswith("/api/handles/"):
            doi = path[len("/api/handles/") :]
            landing = self.dois.get(doi.lower())
            if landing is None:
                return _json({"responseCode": 100, "handle": doi}, 404)
            value = {"format": "string", "value": landing}
            return _json(
                {
                    "responseCode": 1,
                    "handle": doi,
                    "values": [{"index": 1, "type": "URL", "data": value, "ttl": 86400}],
                },
                200,
            )
        landing = self.dois.get(path.lstrip("/").lower())
        if landing is None:
            return web.Response(status=404, text="DOI Not Found")
        raise web.HTTPFound(landing)

    def _zenodo(self, request, path: str) -> web.StreamResponse:
        parts = path.strip("/").split("/")
        if parts[0] == "records" and len(parts) == 2 and parts[1] in self.zenodo_concepts:
            raise web.HTTPFound(f"/records/{self.zenodo_concepts[parts[1]]}")
        if parts[0] == "records" and len(parts) == 2:
            record = self.zenodo.get(parts[1])
            if record is None:
                return web.Response(status=404, text="Not found")
            return web.Response(text="<html>record</html>", content_type="text/html")
        if parts[:2] != ["api", "records"] or len(parts) < 3:
            return _json({"status": 404, "message": "Not found"}, 404)
        record_id = parts[2]
        if record_id in self.zenodo_concepts:  # Zenodo redirects a concept id
            raise web.HTTPFound(f"/api/records/{self.zenodo_concepts[record_id]}")
        record = self.zenodo.get(record_id)
        if record is None:
            return _json({"status": 404, "message": "PID does not exist."}, 404)
        if record.deleted:
            return _json({"status": 410, "message": "PID has been deleted."}, 410)
        base = f"{self.url['zenodo']}/api/records/{record_id}"
        if len(parts) == 3:
            return _json(self._zenodo_record(record_id, record, base), 200)
        if parts[3] == "files" and len(parts) == 4:
            entries = [
                {"key": key, "size": len(data), "links": {"content": f"{base}/files/{key}/content"}}
                for key, data in record.files.items()
            ]
            return _json({"entries": entries, "enabled": True}, 200)
        if parts[3] == "files" and len(parts) == 6 and parts[5] == "content":
            data = record.files.get(parts[4])
            if data is None or record.access_right != "open":
                return _json({"status": 404, "message": "Not found"}, 404)
            return web.Response(body=data, content_type="application/octet-stream")
        return _json({"status": 404, "message": "Not found"}, 404)

    def _zenodo_record(self, record_id: str, record: ZenodoRecord, base: str) -> dict:
        metadata = {"title": "A record", "access_right": record.access_right}
        if record.embargo_date:
            metadata["embargo_date"] = record.embargo_date
        return {
            "id": int(record_id),
            "recid": record_id,
            "doi": record.doi,
            "metadata": metadata,
            "links": {
                "self": base,
                "html": f"{self.url['zenodo']}/records/{record_id}",
                "files": f"{base}/files",
            },
        }

    def _figshare(self, request, path: str) -> web.StreamResponse:
        parts = path.strip("/").split("/")
        missing = _json({"message": "Entity not found: article", "code": "EntityNotFound"}, 404)
        if parts[:2] != ["v2", "articles"] or len(parts) < 4 or parts[3] != "versions":
            return missing
        article = self.figshare.get(parts[2])
        if article is None:
            return missing
        api = f"{self.url['figshare']}/v2/articles/{parts[2]}"
        if len(parts) == 4:
            return _json(
                [{"version": v, "url": f"{api}/versions/{v}"} for v in article["versions"]], 200
            )
        if not parts[4].isdigit() or int(parts[4]) not in article["versions"]:
            return missing
        return _json(
            {
                "id": int(parts[2]),
                "version": int(parts[4]),
                "is_embargoed": article["embargo"],
                "embargo_date": "2099-01-01" if article["embargo"] else None,
                "files": [{"name": "README.md", "is_link_only": False}],
            },
            200,
        )

    def _dataverse(self, request, path: str) -> web.StreamResponse:
        if path == "/dataset.xhtml":
            return web.Response(text="<html>dataset</html>", content_type="text/html")
        if path != "/api/datasets/:persistentId":
            return _json({"status": "ERROR", "message": "API endpoint does not exist"}, 404)
        pid = request.query.get("persistentId", "")
        dataset = self.dataverse.get(pid.removeprefix("doi:"))
        if dataset is None:
            return _json(
                {"status": "ERROR", "message": f"Dataset with Persistent ID {pid} not found."},
                404,
            )
        doi = pid.removeprefix("doi:")
        authority, _, identifier = doi.partition("/")
        latest = {
            "id": dataset.id * 10,
            "versionState": dataset.state,
            "files": [{"label": "README.md", "restricted": dataset.restricted}],
        }
        if dataset.major is not None:
            latest["versionNumber"] = dataset.major
            latest["versionMinorNumber"] = dataset.minor
        return _json(
            {
                "status": "OK",
                "data": {
                    "id": dataset.id,
                    "identifier": identifier,
                    "persistentUrl": f"https://doi.org/{doi}",
                    "protocol": "doi",
                    "authority": authority,
                    "publisher": "Demo Dataverse",
                    "latestVersion": latest,
                },
            },
            200,
        )

    def _hydroshare(self, request, path: str) -> web.StreamResponse:
        parts = path.strip("/").split("/")
        if parts[0] == "resource" and len(parts) == 2:
            return web.Response(text="<html>resource</html>", content_type="text/html")
        if parts[:2] != ["hsapi", "resource"] or parts[3:] != ["scimeta", "elements"]:
            return _json({"detail": "Not found."}, 404)
        resource = self.hydroshare.get(parts[2])
        if resource is None:
            return _json({"detail": f"No resource was found for resource id:{parts[2]}"}, 404)
        if resource["private"]:
            return _json({"detail": "You do not have permission to perform this action."}, 403)
        dates = [
            {"type": "created", "start_date": "2019-01-01T00:00:00.000000Z", "end_date": None},
            {"type": "modified", "start_date": resource["modified"], "end_date": None},
        ]
        return _json({"title": "A resource", "dates": dates}, 200)

    def _ckan(self, request, path: str) -> web.StreamResponse:
        action = path.removeprefix("/api/3/action/")
        help_url = f"{self.url['ckan']}/api/3/action/help_show?name={action}"
        if action == "status_show":
            return _json(
                {"help": help_url, "success": True, "result": {"ckan_version": "2.10.4"}}, 200
            )
        not_found = {"__type": "Not Found Error", "message": "Not found"}
        if action == "package_show":
            dataset = self.ckan.get(request.query.get("id", ""))
            modified = dataset.modified if dataset else None
        elif action == "activity_data_show":
            dataset = next(
                (d for d in self.ckan.values() if request.query.get("id") in d.activities), None
            )
            modified = dataset.activities[request.query["id"]] if dataset else None
        else:
            return web.Response(status=404, text="<html>Not found</html>", content_type="text/html")
        if dataset is None:
            return _json({"help": help_url, "success": False, "error": not_found}, 404)
        if dataset.private:
            denied = {"__type": "Authorization Error", "message": "Access denied"}
            return _json({"help": help_url, "success": False, "error": denied}, 403)
        result = {
            "name": request.query.get("id"),
            "metadata_modified": modified,
            "state": dataset.state,
            "private": False,
            "resources": [],
        }
        return _json({"help": help_url, "success": True, "result": result}, 200)

    def _swh(self, request, path: str) -> web.StreamResponse:
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "1"] and len(parts) == 4 and (parts[2], parts[3]) in self.swh:
            if parts[2] == "revision":
                return _json({"id": parts[3], "directory": "0" * 40, "type": "git"}, 200)
            return _json([{"name": "README.md", "type": "file", "target": "1" * 40}], 200)
        reason = f"{parts[2:3]} with sha1_git {parts[3:4]} not found."
        return _json({"exception": "NotFoundExc", "reason": reason}, 404)

    def _gitea(self, request, path: str) -> web.StreamResponse:
        parts = path.strip("/").split("/")
        missing = _json(
            {"errors": None, "message": "The target couldn't be found.", "url": ""}, 404
        )
        if parts[:3] != ["api", "v1", "repos"] or len(parts) < 5:
            return missing
        found = self.gitea.get(f"{parts[3]}/{parts[4]}".lower())
        if found is None:
            return missing
        full_name, repo = found
        rest = parts[5:]
        if not rest:
            return _json(
                {
                    "full_name": full_name,
                    "name": full_name.split("/")[1],
                    "owner": {"login": full_name.split("/")[0]},
                    "default_branch": repo.default_branch,
                    "empty": repo.empty,
                    "private": repo.private,
                    "html_url": f"{self.url['gitea']}/{full_name}",
                    "clone_url": f"{self.url['gitea']}/{full_name}.git",
                },
                200,
            )
        if rest == ["commits"]:
            sha = repo.lookup(request.query.get("sha", "HEAD"))
            if sha is None:
                return _json({"message": "sha not found", "url": ""}, 404)
            commit = {"sha": sha, "commit": {"message": "commit"}}
            return _json([commit], 200, {"X-Total-Count": "1", "X-HasMore": "false"})
        if rest[:2] == ["git", "commits"] and len(rest) == 3:
            if rest[2].lower() not in repo.commits():
                return _json({"message": f"object does not exist [id: {rest[2]}]"}, 404)
            return _json({"sha": rest[2].lower(), "commit": {"message": "commit"}}, 200)
        return missing


def _json(body, status: int, headers: dict | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body), status=status, content_type="application/json", headers=headers
    )
