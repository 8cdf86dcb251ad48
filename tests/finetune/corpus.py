"""The fine-tuning test corpus: four short Markdown documents and two database rows, as catalog chunks."""

from __future__ import annotations

from almanac.core.types import ChunkRecord

DOCUMENTS = {
    "harbor.md": [
        "The Kestrel Harbor ferry leaves the north pier at 7:40 every weekday morning.",
        "Kestrel Harbor charges a mooring fee of 18 crowns per night for small boats.",
    ],
    "orchard.md": [
        "The Vellmont orchard grows mostly quince trees planted in 1931 by Ada Brell.",
        "Cider from the Vellmont orchard is pressed each October in a stone barn.",
    ],
    "observatory.md": [
        "The Tarn Ridge observatory houses a 61 centimetre reflecting telescope.",
        "Visitors reach the Tarn Ridge observatory by a gravel road from Millbeck village.",
    ],
    "library.md": [
        "The Osric lending library keeps its map collection in the west reading room.",
        "Members of the Osric library may borrow at most six volumes at a time.",
    ],
}
ROWS = [
    "bikes | id: 1 | name: Trail 29 | weight_kg: 12.5 | colour: slate",
    "bikes | id: 2 | name: Gravel Fox | weight_kg: 9.8 | colour: amber",
]


def corpus(collection: str = "default") -> list[ChunkRecord]:
    """The documents' chunks then the rows, with ids from 1 and one document per file or row.

    >>> [(c.id, c.document_id, c.kind) for c in corpus()][-3:]
    [(8, 4, 'document'), (9, 5, 'row'), (10, 6, 'row')]
    """
    chunks: list[ChunkRecord] = []
    for doc_id, (source, texts) in enumerate(DOCUMENTS.items(), start=1):
        for ordinal, text in enumerate(texts):
            chunks.append(
                ChunkRecord(
                    len(chunks) + 1, doc_id, collection, source, f"part {ordinal}", text, "document", ordinal
                )
            )
    for row_number, text in enumerate(ROWS, start=1):
        doc_id = len(DOCUMENTS) + row_number
        chunks.append(
            ChunkRecord(
                len(chunks) + 1, doc_id, collection, f"db://shop/bikes/id={row_number}", "", text, "row"
            )
        )
    return chunks
