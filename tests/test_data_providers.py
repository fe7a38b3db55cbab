"""The data providers (Zenodo, Figshare, Dataverse, HydroShare, CKAN, DOIs, Software
Heritage) and Gitea/Forgejo, against stand-ins that speak their APIs on 127.0.0.1."""

import pytest
import pytest_asyncio
from traitlets.config import Config

from r2dservice import naming
from r2dservice.providers import GiteaRepoProvider, ResolveError, Resolver
from r2dservice.providers.data import epoch
from tests.fakes.datarepos import CKANDataset, Dataset, FakeDataRepos
from tests.fakes.forge import FakeRepo, fake_sha

MODIFIED = "2019-08-01T18:47:48.165316Z"
HS_ID = "b8f6eae9d89241cf8b5904033460af61"
HS_PRIVATE = "142c59757ed54de1816777828c9716e7"
SWH_DIR = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
MAIN, DEV = fake_sha("main"), fake_sha("dev")


@pytest_asyncio.fixture
async def repos():
    async with FakeDataRepos() as r:
        r.add_zenodo("3242074", concept="3242073")
        r.add_zenodo("1111", access_right="restricted")
        r.add_zenodo("2222", access_right="embargoed", embargo_date="2099-01-01")
        r.add_zenodo("3333", deleted=True)
        r.add_figshare("9782777", versions=(1, 2, 3))
        r.add_figshare("5555", embargo=True)
        r.add_dataverse("10.7910/DVN/TJCLKP", Dataset(3035124, major=3, minor=0))
        r.add_dataverse("10.7910/DVN/GONE01", Dataset(1, state="DEACCESSIONED"))
        r.add_dataverse("10.7910/DVN/LOCKED", Dataset(2, restricted=True))
        r.add_dataverse("10.7910/DVN/DRAFT1", Dataset(3, major=None))
        r.add_hydroshare(HS_ID, MODIFIED)
        r.add_hydroshare(HS_PRIVATE, MODIFIED, private=True)
        r.ckan["my-sample-dataset-001"] = CKANDataset(activities={"act-1": "2020-01-01T00:00:00.5"})
        r.ckan["secret-dataset"] = CKANDataset(private=True)
        r.swh.add(("directory", SWH_DIR))
        r.add_gitea(
            "Forgejo/Forgejo", FakeRepo({"forgejo": MAIN, "dev": DEV}, {"v1": DEV}, "forgejo")
        )
        r.add_gitea("someone/empty", FakeRepo())
        r.dois["10.1234/elsewhere"] = "https://example.org/paper"
        yield r


def stand_in_config(repos: FakeDataRepos) -> Config:
    c = Config()
    c.HTTPRepoProvider.trust_env = False
    c.DataRepoProvider.doi_resolver_url = repos.url["doi"]
    c.ZenodoRepoProvider.sites = [repos.url["zenodo"]]
    c.FigshareRepoProvider.api_base_url = repos.url["figshare"] + "/v2"
    c.FigshareRepoProvider.sites = [repos.url["figshare"]]
    c.HydroShareRepoProvider.base_url = repos.url["hydroshare"]
    c.SwhidRepoProvider.api_base_url = repos.url["swh"] + "/api/1"
    c.SwhidRepoProvider.web_base_url = repos.url["swh"]
    c.GiteaRepoProvider.base_url = repos.url["gitea"]
    c.GiteaRepoProvider.access_token = ""
    return c


@pytest_asyncio.fixture
async def resolver(repos):
    r = Resolver(config=stand_in_config(repos), cache_ttl=0)
    yield r
    await r.close()


async def error(resolver, provider, spec) -> ResolveError:
    with pytest.raises(ResolveError) as e:
        await resolver.resolve(provider, spec)
    return e.value


def image(resolved) -> str:
    return naming.image_name("r2d-", resolved.provider, resolved.repo, resolved.resolved_ref)


# --- Zenodo --------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("doi", ["10.5281/zenodo.3242074", "10.5281/zenodo.3242073"])
async def test_zenodo_resolves_a_version_or_concept_doi_to_the_record(resolver, repos, doi):
    """As BinderHub's tests: both DOIs resolve to record 3242074, pinned by its DOI."""
    resolved = await resolver.resolve("zenodo", doi)
    assert resolved.provider == "zenodo"
    assert resolved.spec == doi
    assert resolved.resolved_ref == "3242074"
    assert resolved.repo_url == doi  # what BinderHub hands repo2docker
    assert resolved.persistent_spec == "10.5281/zenodo.3242074"
    assert resolved.ref_url == f"{repos.url['doi']}/10.5281/zenodo.3242074"


@pytest.mark.asyncio
async def test_zenodo_concept_and_version_make_one_image(resolver):
    concept = await resolver.resolve("zenodo", "10.5281/zenodo.3242073")
    version = await resolver.resolve("zenodo", "doi:10.5281/zenodo.3242074")
    assert image(concept) == image(version)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "doi, status, words",
    [
        ("10.5281/zenodo.9999", 404, "DOI 10.5281/zenodo.9999 does not exist"),
        ("10.5281/zenodo.3333", 404, "is deleted"),
        ("10.5281/zenodo.1111", 403, "restricted"),
        ("10.5281/zenodo.2222", 403, "under embargo until 2099-01-01"),
        ("10.7910/DVN/TJCLKP", 400, "not a record of a Zenodo site"),
    ],
)
async def test_zenodo_errors(resolver, doi, status, words):
    e = await error(resolver, "zenodo", doi)
    assert (e.status, words in e.message) == (status, True), e.message


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "site, status, retry",
    [("zenodo", 429, 30), ("zenodo", 503, 30), ("zenodo", 500, None), ("doi", 502, None)],
)
async def test_zenodo_rate_limited_or_down_is_503(resolver, repos, site, status, retry):
    repos.status[site] = status
    e = await error(resolver, "zenodo", "10.5281/zenodo.3242074")
    assert e.status == 503 and "try again" in e.message
    assert e.retry_after == retry


@pytest.mark.asyncio
async def test_unreachable_doi_resolver_is_503(resolver, repos):
    await repos.stop()
    e = await error(resolver, "zenodo", "10.5281/zenodo.3242074")
    assert e.status == 503 and "could not resolve DOI" in e.message


# --- Figshare ------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "doi, ref, pinned",
    [
        ("10.6084/m9.figshare.9782777.v1", "9782777.v1", "10.6084/m9.figshare.9782777.v1"),
        ("10.6084/m9.figshare.9782777", "9782777.v3", "10.6084/m9.figshare.9782777.v3"),
    ],
)
async def test_figshare_resolves_the_version(resolver, repos, doi, ref, pinned):
    resolved = await resolver.resolve("figshare", doi)
    assert (resolved.resolved_ref, resolved.persistent_spec) == (ref, pinned)
    assert resolved.repo_url == doi
    assert resolved.ref_url == f"{repos.url['doi']}/{pinned}"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "doi, status, words",
    [
        ("10.6084/m9.figshare.1234", 404, "no article 1234"),
        ("10.6084/m9.figshare.9782777.v7", 404, "in version 7"),
        ("10.6084/m9.figshare.5555", 403, "under embargo"),
        ("10.6084/not-an-article", 400, "not a Figshare article's DOI"),
    ],
)
async def test_figshare_errors(resolver, doi, status, words):
    e = await error(resolver, "figshare", doi)
    assert (e.status, words in e.message) == (status, True), e.message


# --- Dataverse -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_dataverse_resolves_the_latest_version(resolver, repos):
    resolved = await resolver.resolve("dataverse", "10.7910/DVN/TJCLKP")
    assert resolved.resolved_ref == "3035124.v3.0"  # BinderHub's record id
    assert resolved.repo_url == "10.7910/DVN/TJCLKP"
    assert resolved.persistent_spec == "10.7910/DVN/TJCLKP"
    assert resolved.ref_url == "https://doi.org/10.7910/DVN/TJCLKP"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "doi, status, words",
    [
        ("10.7910/DVN/GONE01", 404, "deaccessioned"),
        ("10.7910/DVN/LOCKED", 403, "restricted"),
        ("10.7910/DVN/DRAFT1", 404, "no published version"),
        ("10.7910/DVN/NOSUCH", 404, "does not exist"),
        ("10.5281/zenodo.3242074", 400, "not a dataset of a Dataverse installation"),
    ],
)
async def test_dataverse_errors(resolver, doi, status, words):
    e = await error(resolver, "dataverse", doi)
    assert (e.status, words in e.message) == (status, True), e.message


@pytest.mark.asyncio
async def test_dataverse_installations_limit_the_hosts(repos):
    config = stand_in_config(repos)
    config.DataverseRepoProvider.installations = ["https://dataverse.harvard.edu"]
    resolver = Resolver(config=config)
    try:
        e = await error(resolver, "dataverse", "10.7910/DVN/TJCLKP")
    finally:
        await resolver.close()
    assert e.status == 400


# --- HydroShare ----------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "spec",
    [
        HS_ID,
        f"10.4211/hs.{HS_ID}",
        f"https%3A%2F%2Fwww.hydroshare.org%2Fresource%2F{HS_ID}",
    ],
)
async def test_hydroshare_resolves_the_modification_time(resolver, repos, spec):
    resolved = await resolver.resolve("hydroshare", spec)
    assert resolved.resolved_ref == f"{HS_ID}.v1564685268"  # BinderHub's record id
    assert resolved.repo_url == f"{repos.url['hydroshare']}/resource/{HS_ID}"
    assert resolved.ref_url == resolved.repo_url
    assert resolved.persistent_spec == HS_ID


@pytest.mark.asyncio
async def test_hydroshare_errors(resolver):
    assert (await error(resolver, "hydroshare", HS_PRIVATE)).status == 403
    missing = await error(resolver, "hydroshare", "0" * 32)
    assert missing.status == 404 and "no resource" in missing.message


def test_epoch_is_binderhubs():
    assert epoch(MODIFIED) == "1564685268"
    assert epoch("2024-04-02T02:10:31.123456") == "1712023831"


# --- CKAN ----------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "path, ref",
    [
        ("/dataset/my-sample-dataset-001", "my-sample-dataset-001.v1712023831"),
        ("/dataset/my-sample-dataset-001/history/act-1", "my-sample-dataset-001.v1577836800"),
        ("/dataset/my-sample-dataset-001/?activity_id=act-1", "my-sample-dataset-001.v1577836800"),
    ],
)
async def test_ckan_resolves_the_dataset_version(resolver, repos, path, ref):
    url = repos.url["ckan"] + path
    resolved = await resolver.resolve("ckan", url.replace(":", "%3A").replace("/", "%2F"))
    assert resolved.resolved_ref == ref
    assert resolved.repo_url == url and resolved.ref_url == url


@pytest.mark.asyncio
async def test_ckan_errors(resolver, repos):
    base = repos.url["ckan"]
    assert (await error(resolver, "ckan", f"{base}/dataset/nosuchdataset")).status == 404
    assert (await error(resolver, "ckan", f"{base}/dataset/secret-dataset")).status == 403
    # a site that is no CKAN: an answer that is not CKAN's
    not_ckan = await error(resolver, "ckan", f"{repos.url['zenodo']}/dataset/x")
    assert not_ckan.status == 404 and "did not answer as a CKAN site" in not_ckan.message


@pytest.mark.asyncio
async def test_ckan_allowed_hosts(repos):
    config = stand_in_config(repos)
    config.CKANRepoProvider.allowed_hosts = ["demo.ckan.org"]
    resolver = Resolver(config=config)
    try:
        e = await error(resolver, "ckan", f"{repos.url['ckan']}/dataset/my-sample-dataset-001")
    finally:
        await resolver.close()
    assert e.status == 403 and "not a CKAN site this service builds from" in e.message


# --- doi/ ----------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "doi, provider",
    [
        ("10.5281/zenodo.3242073", "zenodo"),
        ("10.6084/m9.figshare.9782777", "figshare"),
        ("10.7910/DVN/TJCLKP", "dataverse"),
        (f"10.4211/hs.{HS_ID}", "hydroshare"),
    ],
)
async def test_doi_finds_the_provider_and_makes_its_image(resolver, doi, provider):
    via_doi = await resolver.resolve("doi", doi)
    direct = await resolver.resolve(provider, doi)
    assert via_doi.provider == provider
    assert via_doi == direct
    assert image(via_doi) == image(direct)


@pytest.mark.asyncio
async def test_doi_errors(resolver):
    elsewhere = await error(resolver, "doi", "10.1234/elsewhere")
    assert elsewhere.status == 400
    assert "https://example.org/paper" in elsewhere.message
    assert "Zenodo DOI" in elsewhere.message  # says what it does build from
    assert (await error(resolver, "doi", "10.1234/nothing")).status == 404


@pytest.mark.asyncio
async def test_doi_to_a_provider_that_is_turned_off(repos):
    config = stand_in_config(repos)
    resolver = Resolver(config=config)
    resolver.providers = {k: v for k, v in resolver.providers.items() if k != "zenodo"}
    try:
        e = await error(resolver, "doi", "10.5281/zenodo.3242074")
    finally:
        await resolver.close()
    assert e.status == 400 and "Zenodo" not in e.message.split("builds from")[1]


# --- Software Heritage ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_swhid(resolver, repos):
    swhid = f"swh:1:dir:{SWH_DIR}"
    resolved = await resolver.resolve("swhid", swhid)
    assert (resolved.repo_url, resolved.resolved_ref) == (swhid, SWH_DIR)
    assert resolved.ref_url == f"{repos.url['swh']}/{swhid}"
    missing = await error(resolver, "swhid", "swh:1:rev:" + "1" * 40)
    assert missing.status == 404 and "has not archived" in missing.message
    repos.status["swh"] = 429
    limited = await error(resolver, "swhid", swhid)
    assert (limited.status, limited.retry_after) == (503, 30)


# --- Gitea / Forgejo -----------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "spec, sha",
    [
        ("Forgejo/Forgejo/HEAD", MAIN),
        ("forgejo/forgejo/forgejo", MAIN),
        ("FORGEJO/forgejo.git/dev", DEV),
        ("forgejo/forgejo/v1", DEV),
        (f"forgejo/forgejo/{DEV}", DEV),
    ],
)
async def test_gitea_resolves_with_the_canonical_name(resolver, repos, spec, sha):
    resolved = await resolver.resolve("gitea", spec)
    assert resolved.resolved_ref == sha
    assert resolved.repo == "Forgejo/Forgejo"
    assert resolved.repo_url == f"{repos.url['gitea']}/Forgejo/Forgejo.git"
    assert resolved.ref_url == f"{repos.url['gitea']}/Forgejo/Forgejo/src/commit/{sha}"


@pytest.mark.asyncio
async def test_gitea_spellings_make_one_image(resolver):
    a = await resolver.resolve("gitea", "Forgejo/Forgejo/HEAD")
    b = await resolver.resolve("gitea", "forgejo/forgejo/HEAD")
    assert image(a) == image(b)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "spec, status, words",
    [
        ("nobody/nothing/HEAD", 404, "repository nobody/nothing not found"),
        ("forgejo/forgejo/nope", 404, "ref 'nope' not found"),
        ("forgejo/forgejo/" + "e" * 40, 404, "not found"),
        ("someone/empty/HEAD", 404, "is empty"),
    ],
)
async def test_gitea_errors(resolver, spec, status, words):
    e = await error(resolver, "gitea", spec)
    assert (e.status, words in e.message) == (status, True), e.message


@pytest.mark.asyncio
async def test_gitea_rate_limit_and_outage(resolver, repos):
    repos.status["gitea"] = 429
    assert (await error(resolver, "gitea", "forgejo/forgejo/HEAD")).retry_after == 30
    repos.status["gitea"] = 500
    assert (await error(resolver, "gitea", "forgejo/forgejo/HEAD")).status == 503


class MyForge(GiteaRepoProvider):
    name = "myforge"


@pytest.mark.asyncio
async def test_a_second_gitea_instance_is_a_subclass(repos):
    config = stand_in_config(repos)
    config.MyForge.base_url = repos.url["gitea"]
    resolver = Resolver(config=config, providers={"myforge": MyForge})
    try:
        resolved = await resolver.resolve("myforge", "forgejo/forgejo/HEAD")
    finally:
        await resolver.close()
    assert (resolved.provider, resolved.spec) == ("myforge", "forgejo/forgejo/HEAD")
    assert resolver.describe()[0]["id"] == "myforge"


# --- api/repoproviders: BinderHub's entries ------------------------------------------

# BinderHub's display_config of its data providers (binderhub/repoproviders.py)
BINDERHUB = {
    "zenodo": ("Zenodo DOI", r"10\.\d+\/(.)+", "Zenodo DOI", "example: 10.5281/zenodo.3242074", False),
    "figshare": ("FigShare DOI", r"10\.\d+\/(.)+", "FigShare DOI", "example: 10.6084/m9.figshare.9782777.v1", False),
    "dataverse": ("Dataverse DOI", r"10\.\d+\/(.)+", "Dataverse DOI", "example: 10.7910/DVN/TJCLKP", False),
    "hydroshare": ("Hydroshare resource", r"[^/]+", "Hydroshare resource id", "example: 8f7c2f0341ef4180b0dbe97f59130756", True),
    "ckan": ("CKAN dataset", r"[^/]+", "CKAN dataset URL", "https://demo.ckan.org/dataset/my-sample-dataset-001", True),
}  # fmt: skip


def test_describe_gives_binderhubs_entries():
    entries = {e["id"]: e for e in Resolver().describe()}
    for provider, (display, regex, label, placeholder, encode) in BINDERHUB.items():
        entry = entries[provider]
        assert entry["displayName"] == display
        assert entry["spec"] == {"validateRegex": regex}
        assert entry["repo"] == {"label": label, "placeholder": placeholder, "urlEncode": encode}
        assert entry["ref"] == {"enabled": False}
