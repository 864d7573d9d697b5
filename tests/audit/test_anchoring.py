"""The audit trail is anchored: keyed row hashes re-checked on sealed rows, and published heads.

The attacker here has the database (the trigger bypassed) and knows the chain's
algorithm, but not the row-hash key, which is not in the database.
"""

from __future__ import annotations

import hashlib
import logging
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit import chain
from audit.models import AuditEvent
from audit.services import audit_chain_head, audit_chain_seal, record
from tests.audit.test_chain import _tamper

pytestmark = pytest.mark.django_db

_FIELDS = ["seq", "prev_hash", "chain_hash", *[f for f in chain.HASHED_FIELDS if f != "seq"]]


def _events(n: int) -> list[AuditEvent]:
    return [record(action="admin.action", extra={"action": "probe", "n": i}) for i in range(n)]


def _verify(*args: str) -> tuple[bool, str]:
    out = StringIO()
    try:
        call_command("audit_verify", "--no-record", *args, stdout=out)
    except CommandError as exc:
        return False, str(exc)
    return True, out.getvalue()


def _relink_from(seq: int) -> None:
    """Recompute prev_hash and chain_hash from ``seq`` on, as the (unkeyed) chain allows."""
    prev = AuditEvent.objects.filter(seq=seq - 1).values_list("chain_hash", flat=True).first() or ""
    for row in AuditEvent.objects.filter(seq__gte=seq).order_by("seq").values(*_FIELDS):
        new = chain.link_hash(prev, row)
        _tamper("UPDATE audit_auditevent SET prev_hash = %s, chain_hash = %s WHERE id = %s", [prev, new, row["id"]])
        prev = new


def _publish(caplog) -> str:
    """Run beat's publication and return the head as the log line gave it (SEQ:HASH)."""
    from audit.tasks import publish_audit_chain_head

    with caplog.at_level(logging.INFO, logger="dashtam.audit"):
        publish_audit_chain_head.apply().get()
    line = [r for r in caplog.records if r.getMessage() == "audit chain head"][-1]
    return f"{line.head_seq}:{line.head_hash}"


def test_an_edit_with_the_chain_recomputed_after_it_is_found_by_the_row_hash(in_request):
    events = _events(5)
    audit_chain_seal()
    victim = events[2]
    _tamper("UPDATE audit_auditevent SET ip = %s WHERE id = %s", ["10.9.9.9", victim.pk])
    _relink_from(AuditEvent.objects.get(pk=victim.pk).seq)  # every link checks out again

    ok, output = _verify()
    assert not ok
    assert f"event id {victim.pk}" in output and "row hash" in output


def test_a_replaced_row_hash_on_a_sealed_event_is_reported(in_request):
    events = _events(3)
    audit_chain_seal()
    forged = hashlib.sha256(b"anything without the key").hexdigest()
    _tamper("UPDATE audit_auditevent SET row_hash = %s WHERE id = %s", [forged, events[1].pk])

    ok, output = _verify()
    assert not ok and f"event id {events[1].pk}" in output and "row hash" in output


def test_beat_publishes_the_head_to_the_log_and_the_admin_once_per_change(in_request, caplog):
    _events(3)
    published = _publish(caplog)
    seq, head = audit_chain_head()
    assert published == f"{seq}:{head}" and seq == 3
    event = AuditEvent.objects.get(action="audit.head_published")
    assert event.extra == {"head_seq": 3, "head_hash": head}

    _publish(caplog)  # nothing new but its own publication: logged, not recorded again
    assert AuditEvent.objects.filter(action="audit.head_published").count() == 1
    _events(1)
    _publish(caplog)
    assert AuditEvent.objects.filter(action="audit.head_published").count() == 2


def test_an_untouched_trail_verifies_against_its_published_head(in_request, caplog):
    _events(4)
    published = _publish(caplog)
    _events(2)
    audit_chain_seal()

    ok, output = _verify("--against", published)
    assert ok and f"Published head seq {published.split(':')[0]} matches" in output


def test_a_row_removed_and_the_chain_relinked_before_a_published_head_is_caught(in_request, caplog):
    events = _events(6)
    published = _publish(caplog)  # seq 6
    # Remove event 2, renumber the rest and relink: every row still matches its row hash.
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[1].pk])
    for event in events[2:]:
        _tamper("UPDATE audit_auditevent SET seq = seq - 1 WHERE id = %s", [event.pk])
    _relink_from(2)
    audit_chain_seal()  # the publication event becomes the new seq 6

    assert _verify()[0], "the table alone cannot show this removal"
    ok, output = _verify("--against", published)
    assert not ok and "published head seq 6" in output


def test_the_newest_sealed_events_removed_are_caught_by_a_published_head(in_request, caplog):
    events = _events(3)
    published = _publish(caplog)
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[-1].pk])

    ok, output = _verify("--against", published)
    assert not ok and "not in the trail" in output


def test_a_malformed_head_is_refused(in_request):
    with pytest.raises(CommandError, match="SEQ:HASH"):
        call_command("audit_verify", "--no-record", "--against", "12:nothex")
