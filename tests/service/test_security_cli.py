"""The security commands: a busy port refused in one line, token list and revoke, audit verify and seal."""

import json
import socket

from typer.testing import CliRunner

from umrisk.cli import app
from umrisk.serving.audit import AuditLog
from umrisk.serving.auth import create_token

runner = CliRunner()


def test_a_busy_port_is_one_line_before_anything_loads(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = runner.invoke(app, ["serve", "--data", str(tmp_path / "nowhere"), "--port", str(port)])
    assert r.exit_code == 2
    assert r.output.strip() == (f"port {port} on 127.0.0.1 is already in use: stop what listens there or pass "
                                "--port")


def test_serve_refuses_a_store_missing_a_table_in_one_line(tmp_path):
    (tmp_path / "store" / "members").mkdir(parents=True)
    (tmp_path / "store" / "members" / "part-00000.parquet").touch()
    r = runner.invoke(app, ["serve", "--data", str(tmp_path / "store"), "--port", "0", "--tokens",
                            str(tmp_path / "tokens.json"), "--audit", str(tmp_path / "audit.jsonl"),
                            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1
    assert "lacks the table(s) enrollment, encounters" in r.output and "labs" in r.output


def test_token_list_and_revoke(tmp_path):
    path = tmp_path / "tokens.json"
    first, token = create_token(path, "reviewer", "nurse on ward 3")
    create_token(path, "admin", "ops")
    listed = runner.invoke(app, ["token", "list", "--tokens", str(path)])
    assert listed.exit_code == 0 and first in listed.output and "nurse on ward 3" in listed.output
    stored = json.loads(path.read_text())
    assert token not in listed.output and not any(e["sha256"] in listed.output for e in stored)
    revoked = runner.invoke(app, ["token", "revoke", first, "--tokens", str(path)])
    assert revoked.exit_code == 0 and f"revoked token {first}" in revoked.output
    assert first not in runner.invoke(app, ["token", "list", "--tokens", str(path)]).output
    again = runner.invoke(app, ["token", "revoke", first, "--tokens", str(path)])
    assert again.exit_code == 2 and f"no token with id {first}" in again.output


def test_token_list_of_a_half_written_file_is_one_line(tmp_path):
    path = tmp_path / "tokens.json"
    path.write_text('[{"id": "a1", "role": "admin", "sha')
    r = runner.invoke(app, ["token", "list", "--tokens", str(path)])
    assert r.exit_code == 2 and str(path) in r.output and "not valid JSON" in r.output


def test_audit_verify_names_a_truncation_and_seal_accepts_a_checked_log(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append([{"endpoint": "score", "member_id": f"M{i}"} for i in range(5)])
    assert runner.invoke(app, ["audit", "verify", str(path)]).exit_code == 0
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:3]))
    r = runner.invoke(app, ["audit", "verify", str(path)])
    assert r.exit_code == 1 and "truncated" in r.output and "2 entries were removed" in r.output
    sealed = runner.invoke(app, ["audit", "seal", str(path)])
    assert sealed.exit_code == 0 and "3 entries" in sealed.output
    assert runner.invoke(app, ["audit", "verify", str(path)]).exit_code == 0
