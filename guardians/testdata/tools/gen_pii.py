"""Generate the labelled PII evaluation set with presidio-evaluator (PyPI).

    python3 -m venv /tmp/gvenv && /tmp/gvenv/bin/pip install presidio-evaluator==0.3.2
    /tmp/gvenv/bin/python guardians/testdata/tools/gen_pii.py guardians/testdata/pii/presidio_sentences.jsonl

Fixed seed (42), 3000 sentences from presidio-evaluator's own templates and Faker providers.
Each output line: {"text": ..., "spans": [{"entity_type", "start", "end", "value"}]}
with start/end as UTF-8 *byte* offsets (the Rust side works in bytes).
All spans are kept (PERSON, LOCATION, ...); the evaluation only scores the entity types Warden detects.
"""
import json
import random
import sys

from presidio_evaluator.data_generator import PresidioSentenceFaker

SEED = 42
N = 3000

random.seed(SEED)
faker = PresidioSentenceFaker("en_US", lower_case_ratio=0.05, random_seed=SEED)
out = open(sys.argv[1], "w", encoding="utf-8")
samples = faker.generate_new_fake_sentences(num_samples=N)
for s in samples:
    text = s.full_text
    spans = []
    for sp in s.spans:
        b0 = len(text[: sp.start_position].encode("utf-8"))
        b1 = len(text[: sp.end_position].encode("utf-8"))
        spans.append({"entity_type": sp.entity_type, "start": b0, "end": b1, "value": sp.entity_value})
    spans.sort(key=lambda x: x["start"])
    out.write(json.dumps({"text": text, "spans": spans}, ensure_ascii=False) + "\n")
out.close()
