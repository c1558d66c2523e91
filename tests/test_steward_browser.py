"""The steward page in a real browser (Playwright driving Debian's chromium) over a live server holding the
shared sample after a run: log in, filter the queue, decide tasks by keyboard, merge, split, unmask; each
effect checked through the JSON API and again after a batch run started through the admin endpoint.
Screenshots of the queue, task and customer views go to ``test-artifacts/screenshots/``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_api_e2e import LiveServer
from test_api_steward import Sample, build_sample

from api.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
KEYS = {"li": "steward", "ops": "admin"}
RUN_TIMEOUT = 600.0


@dataclass
class Ui:
    """The live server, a logged-out browser page and an API client with the test's keys."""

    url: str
    page: Any
    api: httpx.Client
    sample: Sample
    done: dict[str, Any] = field(default_factory=dict)

    def call(self, who: str, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.sample.tokens[who]}"}
        return self.api.request(method, url, headers=headers, **kw)

    def owner(self, source: str, key: str) -> str:
        r = self.call("li", "GET", f"/v1/xref/{source}/{key}")
        assert r.status_code == 200, r.text
        return str(r.json()["customer_id"])


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Iterator[Ui]:
    sample = build_sample(tmp_path_factory, sample_dir, KEYS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with (
        LiveServer(create_app(sample.db)) as server,
        httpx.Client(base_url=server.url, timeout=60) as api,
        sync_api.sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, base_url=server.url)
        try:
            yield Ui(server.url, page, api, sample)
        finally:
            browser.close()


def disjoint_tasks(tasks: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """``n`` tasks sharing no record, the first one not between different valid ID numbers."""
    ordered = sorted(tasks, key=lambda t: "different valid IDs" in t["reasons"])
    chosen: list[dict[str, Any]] = []
    for task in ordered:
        seen = {r for t in chosen for r in (t["rid_l"], t["rid_r"])}
        if len(chosen) < n and not {task["rid_l"], task["rid_r"]} & seen:
            chosen.append(task)
    return chosen


def test_login_and_queue(ui: Ui) -> None:
    page = ui.page
    page.goto("/steward/")
    assert page.locator("#api_key").get_attribute("type") == "password"
    page.fill("#api_key", ui.sample.tokens["li"])
    page.click("#login")
    page.wait_for_selector("#queue")
    rows = page.locator("#queue tbody tr[data-task-id]")
    assert rows.count() >= 10
    page.screenshot(path=str(SCREENSHOTS / "queue.png"))
    cookie = next(c for c in page.context.cookies() if c["name"] == "mdm_steward")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    source = ui.sample.picks.tasks[0]["left_source"]
    page.select_option("select[name=source]", source)
    page.select_option("select[name=order]", "oldest")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**order=oldest*")
    texts = page.locator("#queue tbody tr[data-task-id]").all_inner_texts()
    assert texts and all(source in t for t in texts)


@pytest.mark.parametrize(
    ("index", "key", "decision"),
    [(0, "m", "match"), (1, "n", "no-match"), (2, "u", "unsure"), (3, "s", None)],
)
def test_decide_by_keyboard(ui: Ui, index: int, key: str, decision: str | None) -> None:
    task = disjoint_tasks(ui.sample.picks.tasks, 4)[index]
    task_id = task["task_id"]
    page = ui.page
    page.goto(f"/steward/tasks/{task_id}")
    page.wait_for_selector("#task[data-claimed='1']")
    assert page.locator("#pair tbody tr.diff").count() >= 1
    assert page.locator("#waterfall .bar").count() >= 2
    assert task["left_key"] in page.inner_text("#pair thead") and task["right_key"] in page.inner_text(
        "#pair thead"
    )
    claimed = ui.call("li", "GET", f"/v1/review/tasks/{task_id}").json()["task"]
    assert (claimed["status"], claimed["assignee"]) == ("claimed", "li")
    if index == 0:
        page.screenshot(path=str(SCREENSHOTS / "task.png"), full_page=True)
    page.keyboard.press(key)
    if key == "u":
        page.wait_for_selector("#unsure-note", state="visible")
        page.keyboard.type("need the branch's account file")
        page.keyboard.press("Enter")
    page.wait_for_url(lambda url: f"/steward/tasks/{task_id}" not in url)
    after = ui.call("li", "GET", f"/v1/review/tasks/{task_id}").json()
    if decision is None:
        assert (after["task"]["status"], after["task"]["assignee"]) == ("open", None)
        assert after["decisions"] == []
    else:
        assert after["task"]["status"] == "decided"
        assert [(d["decision"], d["user"]) for d in after["decisions"]] == [(decision, "li")]
        ui.done[decision] = task


def test_merge_in_browser(ui: Ui) -> None:
    a, b = ui.sample.picks.free_customers[0], ui.sample.picks.free_customers[1]
    page = ui.page
    page.goto(f"/steward/customers/{a['customer_id']}")
    page.fill("#merge-form input[name=customer_b]", b["customer_id"])
    page.fill("#merge-form input[name=reason]", "same person, the branch confirmed")
    with page.expect_navigation():
        page.click("#merge-form button[type=submit]")
        page.wait_for_selector("#status:has-text('Merged')")
    survivor = ui.owner(a["sources"][0], a["keys"][0])
    assert page.url.endswith(f"/steward/customers/{survivor}")
    assert ui.owner(b["sources"][0], b["keys"][0]) == survivor
    retired = ({a["customer_id"], b["customer_id"]} - {survivor}).pop()
    assert ui.call("li", "GET", f"/v1/customers/{retired}").json()["merged_into"] == survivor
    assert page.locator("#members tbody tr").count() == a["n"] + b["n"]
    assert "steward_merged" in page.inner_text("#events")
    page.screenshot(path=str(SCREENSHOTS / "customer.png"), full_page=True)
    ui.done["merged"] = (a, b)


def test_split_in_browser(ui: Ui) -> None:
    customer = next(c for c in ui.sample.picks.free_customers[2:] if c["n"] >= 2)
    rid, source, key = customer["rids"][0], customer["sources"][0], customer["keys"][0]
    page = ui.page
    page.goto(f"/steward/customers/{customer['customer_id']}")
    row = page.locator(f"#members tr[data-rid='{rid}']")
    row.locator("input[name=reason]").fill("a different person, same mobile")
    with page.expect_navigation():
        row.locator("button.split").click()
        page.wait_for_selector("#status:has-text('Record moved to')")
        moved_to = page.inner_text("#status").split()[-1]
    assert page.locator(f"#members tr[data-rid='{rid}']").count() == 0
    assert ui.owner(source, key) == moved_to != customer["customer_id"]
    assert ui.owner(customer["sources"][1], customer["keys"][1]) == customer["customer_id"]
    ui.done["split"] = customer


def test_unmask_with_reason(ui: Ui) -> None:
    customer = ui.sample.picks.free_customers[4]
    page = ui.page
    page.goto(f"/steward/customers/{customer['customer_id']}")
    masked = page.inner_text("#golden tr[data-attribute='name'] td")
    page.fill("#unmask-reason", "customer called about the account")
    page.click("#unmask-form button[type=submit]")
    page.wait_for_selector("#view:has-text('Plain values')")
    plain = ui.call(
        "li",
        "GET",
        f"/v1/customers/{customer['customer_id']}",
        params={"unmask": 1, "reason": "check the page"},
    ).json()["attributes"]["name"]
    assert "*" in masked and page.inner_text("#golden tr[data-attribute='name'] td") == plain != masked


def test_batch_run_honours_every_action(ui: Ui) -> None:
    started = ui.call("ops", "POST", "/v1/admin/runs")
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + RUN_TIMEOUT
    state = started.json()
    while state["state"] == "running" and time.monotonic() < deadline:
        time.sleep(1.0)
        state = ui.call("ops", "GET", "/v1/admin/runs").json()
    assert state["state"] == "succeeded", state
    match, no_match = ui.done["match"], ui.done["no-match"]
    assert ui.owner(match["left_source"], match["left_key"]) == ui.owner(
        match["right_source"], match["right_key"]
    )
    assert ui.owner(no_match["left_source"], no_match["left_key"]) != ui.owner(
        no_match["right_source"], no_match["right_key"]
    )
    a, b = ui.done["merged"]
    assert ui.owner(a["sources"][0], a["keys"][0]) == ui.owner(b["sources"][0], b["keys"][0])
    split = ui.done["split"]
    assert ui.owner(split["sources"][0], split["keys"][0]) != ui.owner(split["sources"][1], split["keys"][1])
    open_tasks = ui.call("li", "GET", "/v1/review/tasks", params={"limit": 1000}).json()["tasks"]
    pairs = {frozenset((t["rid_l"], t["rid_r"])) for t in open_tasks}
    assert frozenset((no_match["rid_l"], no_match["rid_r"])) not in pairs
    ui.page.goto("/steward/")
    assert ui.page.locator("#queue tbody tr[data-task-id]").count() == min(len(open_tasks), 200)
