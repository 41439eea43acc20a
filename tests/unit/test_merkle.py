"""RFC 9162 Merkle tree, checked against an independent implementation (pymerkle, test extra only)."""

import pytest
from pymerkle import InmemoryTree

from hub.infra.merkle import (
    Accumulator,
    MemoryTree,
    leaf_hash,
    leaf_input,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 17, 31, 32, 33, 100]


@pytest.fixture(scope="module")
def trees():
    data = [leaf_input(p, bytes([p % 251]) * 32) for p in range(1, 101)]
    reference = InmemoryTree(algorithm="sha256")
    for entry in data:
        reference.append_entry(entry)
    return data, reference, MemoryTree([leaf_hash(entry) for entry in data])


def test_roots_match_the_reference_at_every_size(trees):
    _, reference, tree = trees
    accumulator = Accumulator()
    for size in range(1, 101):
        accumulator.append(tree.levels[0][size - 1])
        assert tree.root(size) == reference.get_root(size) == accumulator.root(), size


@pytest.mark.parametrize("size", SIZES)
def test_inclusion_proofs_match_the_reference(trees, size):
    data, reference, tree = trees
    root = reference.get_root(size)
    for index in range(size):
        path = tree.inclusion(index, size)
        expected = reference.prove_inclusion(index + 1, size).serialize()["path"]
        assert expected[0] == leaf_hash(data[index]).hex()
        assert [h.hex() for h in path] == expected[1:], (index, size)
        assert verify_inclusion(index, size, leaf_hash(data[index]), path, root)
        assert not verify_inclusion(index, size, leaf_hash(data[index] + b"x"), path, root)
        if path:
            assert not verify_inclusion(index, size, leaf_hash(data[index]), path[:-1], root)
            wrong = (index + 1) % size
            if wrong != index:
                assert root_from_inclusion(wrong, size, leaf_hash(data[index]), path) != root


@pytest.mark.parametrize("new", SIZES)
def test_consistency_proofs_match_the_reference(trees, new):
    """Our proofs lead from the reference's old root to its new root (pymerkle lays its own
    consistency paths out differently, so the paths themselves are not compared)."""
    _, reference, tree = trees
    for old in range(1, new + 1):
        path = tree.consistency(old, new)
        old_root, new_root = reference.get_root(old), reference.get_root(new)
        assert verify_consistency(old, new, old_root, new_root, path), (old, new)
        if old < new:
            assert not verify_consistency(old, new, old_root, reference.get_root(new - 1), path)
            assert not verify_consistency(old, new, bytes(32), new_root, path)
            assert not verify_consistency(old, new, old_root, new_root, path[:-1])


def test_a_proof_outside_the_tree_is_refused(trees):
    _, _, tree = trees
    with pytest.raises(ValueError):
        tree.inclusion(5, 5)
    with pytest.raises(ValueError):
        tree.consistency(6, 5)


def test_keys_and_notes_round_trip():
    from hub.infra.notes import NoteError, Signer, TreeHead, Verifier, open_checkpoint

    for _ in range(20):  # base64 of some keys holds "+": the key forms still parse
        signer = Signer.generate("hub.example/audit")
        assert Signer.parse(signer.skey).verifier == Verifier.parse(signer.verifier.vkey) == signer.verifier
    head = TreeHead("hub.example/audit", 13, bytes(range(32)))
    note = signer.sign(head.text())
    assert note.startswith("hub.example/audit\n13\n") and "\n\n\u2014 hub.example/audit " in note
    assert open_checkpoint(note, [signer.verifier]) == (head, [signer.verifier])
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_checkpoint(note, [Signer.generate("hub.example/audit").verifier])
    with pytest.raises(NoteError, match="does not verify"):
        open_checkpoint(note.replace("\n13\n", "\n14\n"), [signer.verifier])


def test_a_receipt_opens_with_the_public_key_only_when_unaltered():
    import base64

    from hub.infra.notes import NoteError, Signer
    from hub.infra.receipts import Receipt, make_receipt, open_receipt

    signer = Signer.generate("hub.example/audit")
    receipt = Receipt("hub.example/audit", 41, bytes(range(32)), "2026-12-07T05:36:20.112Z")
    value = make_receipt(signer, receipt)
    assert "\n" not in value
    assert open_receipt(value, [signer.verifier]) == (receipt, [signer.verifier])
    note = base64.b64decode(value).decode()
    altered = base64.b64encode(note.replace("\n41\n", "\n42\n").encode()).decode()
    with pytest.raises(NoteError, match="does not verify"):
        open_receipt(altered, [signer.verifier])
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_receipt(value, [Signer.generate("hub.example/audit").verifier])
    with pytest.raises(NoteError, match="not a receipt"):
        open_receipt("not base64!", [signer.verifier])
