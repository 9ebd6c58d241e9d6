"""A small notes API the user already runs (uvicorn main:app). It has no chat yet."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

app = FastAPI(title="Notes")
NOTES: dict[int, str] = {1: "Buy milk", 2: "Call the plumber on Tuesday"}


class Note(BaseModel):
    text: str


@app.get("/notes")
def list_notes() -> dict[int, str]:
    return NOTES


@app.post("/notes")
def add_note(note: Note) -> dict[str, int]:
    note_id = max(NOTES, default=0) + 1
    NOTES[note_id] = note.text
    return {"id": note_id}


@app.get("/notes/{note_id}")
def get_note(note_id: int) -> dict[str, str]:
    if note_id not in NOTES:
        raise HTTPException(404, "no such note")
    return {"text": NOTES[note_id]}
