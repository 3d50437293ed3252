"""The crisis lexicon against 378 hand-labelled chat sentences (tests/realtime/data/crisis_eval.tsv):
precision and recall have a floor (docs/RELIABILITY.md has the numbers and what is missed)."""

from pathlib import Path

from halobestie.runtime.schema import RuntimeConfigValues
from sessions_app.safety import crisis_words_found

DATA = Path(__file__).parent / "data" / "crisis_eval.tsv"
PRECISION_FLOOR = 0.95
RECALL_FLOOR = 0.95


def _labelled():
    rows = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        label, sentence = line.split("\t")
        assert label in ("crisis", "ok"), line
        rows.append((label == "crisis", sentence))
    return rows


def test_it_has_at_least_300_varied_labelled_sentences():
    rows = _labelled()
    assert len(rows) >= 300
    assert len({sentence for _, sentence in rows}) == len(rows)
    assert sum(1 for is_crisis, _ in rows if is_crisis) >= 150
    assert sum(1 for is_crisis, _ in rows if not is_crisis) >= 150


def test_it_reaches_the_precision_and_recall_floor_on_the_evaluation_set():
    config = RuntimeConfigValues()
    true_positives = false_positives = false_negatives = 0
    for is_crisis, sentence in _labelled():
        flagged = bool(crisis_words_found(sentence, config.crisis_words, config.crisis_exclusions))
        true_positives += flagged and is_crisis
        false_positives += flagged and not is_crisis
        false_negatives += is_crisis and not flagged
    precision = true_positives / (true_positives + false_positives)
    recall = true_positives / (true_positives + false_negatives)
    # Reached when written (issue 20): precision 158/162 = 0.975, recall 158/165 = 0.958.
    assert (true_positives, false_positives, false_negatives) == (158, 4, 7)
    assert precision >= PRECISION_FLOOR
    assert recall >= RECALL_FLOOR
