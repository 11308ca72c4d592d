"""execute_order turns a failed check into OrderCancelled(order_id, reason)
by decoding Error(string) with a reason of at most 64 bytes
(PerpOrders.MAX_REVERT = 4 + 32 + 32 + 64). A longer reason would make the
execution revert instead of cancel. Every reason the contracts and the
snekmate modules they use can raise fits."""

from tests.model.sources import SNEKMATE_REASONS, all_revert_reasons


def test_revert_reasons__every_one__fits_the_64_bytes_a_cancellation_decodes():
    reasons = all_revert_reasons() | set(SNEKMATE_REASONS)
    assert len(reasons) > 80
    too_long = sorted(r for r in reasons if len(r.encode()) > 64)
    assert not too_long, too_long
