"""Host files as corrections (issue 15.4): the readers of Nuke, Blender, mmSolver and 3DEqualizer pass
keyed frames as anchors, and an edited re-export gives exactly the frames the artist moved."""

from __future__ import annotations

import json

import pytest

from _adapter_helpers import W, golden_trackset
from dino_tracker_vfx.adapters import read_queries, write_tracks
from dino_tracker_vfx.errors import InputError
from dino_tracker_vfx.inputs import add_corrections


def _queries(ts):
    return [q for q in ts.queries]


@pytest.mark.parametrize("adapter, suffix", [("nuke", ".nk"), ("mmsolver", ".uv"), ("tde", ".3de.txt")])
def test_an_edited_re_export_gives_the_moved_keys_as_corrections(tmp_path, adapter, suffix):
    ts = golden_trackset()
    edited = golden_trackset()
    edited.xy[0, 3] += (3.0, -2.0)  # the artist moves car_a at frame 1004
    path = tmp_path / f"edited{suffix}"
    write_tracks(edited, path, adapter)
    # read as queries: each track's query only; with the 'keyed' context key: every keyed frame as well
    plain = read_queries(path, ts)
    assert [q.name for q in plain] == ["car_a", "car_b", "corner 1"]
    keyed = read_queries(path, ts, options={"keyed": True})
    assert len([q for q in keyed if q.name == "car_a"]) == 5 and len([q for q in keyed if q.name == "car_b"]) == 4
    out = add_corrections(_queries(ts), path, ts, previous=ts)
    fixes = out[len(ts.queries):]
    assert [(q.name, q.t) for q in fixes] == [("car_a", 3)]
    assert (fixes[0].x, fixes[0].y) == pytest.approx((33.0, 13.0), abs=2e-3)
    # without the tracks being corrected, every key that is not an anchor already is a correction
    assert len(add_corrections(_queries(ts), path, ts)) == len(ts.queries) + 4 + 3 + 4


def test_blender_markers_the_artist_keyed_are_the_corrections(tmp_path):
    ts = golden_trackset()
    path = tmp_path / "t.blender.json"
    write_tracks(ts, path)
    doc = json.loads(path.read_text())
    tr = next(t for t in doc["tracks"] if t["name"] == "car/car_a")
    assert [m[4] for m in tr["markers"]] == [True, False, False, False, False]  # only the query is keyed
    tr["markers"][3][1] += 3.0 / W  # the artist drags the marker at 1004: Blender keys it
    tr["markers"][3][4] = True
    tr["markers"][1][1] += 5.0 / W  # a tracked marker moved by the tracker, not the artist: not keyed
    path.write_text(json.dumps(doc))
    out = add_corrections(_queries(ts), path, ts, previous=ts)
    fixes = out[len(ts.queries):]
    assert [(q.name, q.t) for q in fixes] == [("car_a", 3)] and fixes[0].x == pytest.approx(33.0, abs=1e-6)


def test_a_keyed_frame_for_a_track_the_queries_lack_is_named(tmp_path):
    ts = golden_trackset()
    path = tmp_path / "e.nk"
    write_tracks(ts, path, "nuke")
    with pytest.raises(InputError, match=r"e.nk: correction for unknown track 'corner 1' \(not in q.csv\)"):
        add_corrections(_queries(ts)[:2], path, ts, source="q.csv")
