"""Live-notification stream slots: one account cannot take a process's every stream."""

from __future__ import annotations

from web.stream_slots import StreamSlots


def test_a_new_stream_past_the_accounts_share_replaces_its_oldest():
    slots = StreamSlots(capacity=4, per_account=2)
    first, _ = slots.take("ada")
    second, _ = slots.take("ada")
    third, replaced = slots.take("ada")
    assert replaced is first and first.replaced.is_set()
    assert third is not None and not second.replaced.is_set()
    assert slots.in_use == 2


def test_one_account_holding_seven_streams_leaves_room_for_others():
    slots = StreamSlots(capacity=4, per_account=2)
    for _ in range(7):
        slots.take("greedy")
    assert slots.in_use == 2
    others = [slots.take(name)[0] for name in ("ada", "grace")]
    assert all(others) and slots.in_use == 4


def test_a_full_process_turns_a_new_account_away_until_a_slot_is_released():
    slots = StreamSlots(capacity=2, per_account=2)
    held, _ = slots.take("ada")
    slots.take("grace")
    refused, replaced = slots.take("linus")
    assert (refused, replaced) == (None, None)
    slots.release(held)
    assert slots.take("linus")[0] is not None


def test_releasing_a_replaced_slot_frees_nothing_twice():
    slots = StreamSlots(capacity=3, per_account=1)
    first, _ = slots.take("ada")
    slots.take("ada")
    slots.release(first)  # the replaced stream ends after its replacement started
    assert slots.in_use == 1
