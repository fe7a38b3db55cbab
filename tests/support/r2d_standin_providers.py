"""A repo2docker config (``repo2docker --config``) whose Zenodo content provider fetches
from the stand-ins of tests/fakes/datarepos.py.

repo2docker's Zenodo provider has its hosts written into its __init__ and asks
https://doi.org/api/handles/ for every DOI: neither is configurable. What repo2docker
does let a config change is the list of content providers, so this one swaps in a
subclass whose hosts and DOI resolver are the stand-ins, named by the environment:
R2D_STANDIN_DOI (the resolver) and R2D_STANDIN_ZENODO (the Zenodo site).
The base image and buildpacks come from the development config (R2D_TEST_REPO2DOCKER_CONFIG).
"""

import os

from repo2docker.contentproviders import Git, Local, Zenodo
from repo2docker.utils import is_doi, normalize_doi

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)
load_subconfig(os.environ["R2D_TEST_REPO2DOCKER_CONFIG"])  # noqa: F821

DOI = os.environ["R2D_STANDIN_DOI"]
ZENODO = os.environ["R2D_STANDIN_ZENODO"]


class StandInZenodo(Zenodo):
    def __init__(self):
        super().__init__()
        self.hosts = [
            {
                "hostname": [f"{ZENODO}/records/", f"{ZENODO}/record/"],
                "api": f"{ZENODO}/api/records/",
                "files": "links.files",
                "filepath": "entries",
                "filename": "key",
                "download": "links.content",
                "type": "metadata.upload_type",
            }
        ]

    def doi2url(self, doi):
        # repo2docker's own, with the resolver's address as the only change
        if not is_doi(doi):
            return doi
        resp = self._request(f"{DOI}/api/handles/{normalize_doi(doi)}")
        if resp.status_code != 200:
            return doi
        urls = [v["data"]["value"] for v in resp.json()["values"] if v["type"] == "URL"]
        return urls[0] if urls else doi


c.Repo2Docker.content_providers = [Local, StandInZenodo, Git]
