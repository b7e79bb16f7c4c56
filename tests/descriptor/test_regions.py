"""Query regions: grid cells tile the query, are described beside it, and a collage cell finds its photo."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from d2lv import cli
from d2lv.descriptor import regions, store
from d2lv.io import tables


@pytest.mark.parametrize("n", [2, 3])
def test_grid_cells_tile_the_image_without_overlap(n):
    covered = np.zeros((101, 203), int)
    for x0, y0, x1, y1 in regions.grid_boxes(203, 101, n):
        covered[y0:y1, x0:x1] += 1
    assert (covered == 1).all()


def test_grid_regions_are_named_after_their_query(astronaut):
    cells = regions.grid_regions("Q1", astronaut, 2)
    assert [name for name, _ in cells] == ["Q1/grid0", "Q1/grid1", "Q1/grid2", "Q1/grid3"]
    np.testing.assert_array_equal(cells[3][1], astronaut[256:, 256:])
    assert regions.grid_regions("Q1", astronaut, 1) == [] and regions.grid_regions("Q1", astronaut[:1], 2) == []


def _collage(photos: dict[str, np.ndarray], names: list[str], side: int = 256) -> np.ndarray:
    cells = [np.asarray(Image.fromarray(photos[name]).resize((side, side))) for name in names]
    return np.vstack([np.hstack(cells[:2]), np.hstack(cells[2:])])


@pytest.fixture(scope="module")
def searched(photos, tmp_path_factory):
    """A 2x2 collage query of four photos, searched against five photos with and without regions."""
    root = tmp_path_factory.mktemp("regions")
    for folder, images in {"references": photos, "queries": {
            "collage": _collage(photos, ["rocket", "motorcycle", "astronaut", "chelsea"])}}.items():
        (root / folder).mkdir()
        for name, rgb in images.items():
            Image.fromarray(rgb).save(root / folder / f"{name}.png")
        assert cli.main(["manifest", str(root / folder), "-o", str(root / f"{folder}.parquet"), "-q"]) == 0
    found = {}
    for grid in (0, 2):
        for name, isc_set in (("references", "references"), ("queries", "queries")):
            assert cli.main(["descriptor-extract", str(root / f"{name}.parquet"), "--set", isc_set, "-o",
                             str(root / f"{name}{grid}.h5"), "--device", "cpu", "--regions", str(grid), "-q"]) == 0
        out = root / f"pairs{grid}.parquet"
        assert cli.main(["descriptor-search", "--queries", str(root / f"queries{grid}.h5"), "--references",
                         str(root / f"references{grid}.h5"), "--topk", "5", "-o", str(out), "-q"]) == 0
        found[grid] = (tables.read_tables([out], tables.SIMILARITY_PAIRS), root / f"queries{grid}.h5",
                       root / f"references{grid}.h5")
    return found


def test_regions_are_stored_beside_the_query_and_references_get_none(searched):
    _, queries, references = searched[2]
    assert store.read_regions(queries)[0] == [f"collage/grid{k}" for k in range(4)]
    assert store.read_descriptors(queries, "query")[0] == ["collage"]
    assert store.read_regions(references)[0] == [] and store.read_regions(searched[0][1])[0] == []


def test_each_collage_cell_finds_its_photo_through_its_region(searched):
    whole, with_regions = (searched[grid][0].set_index("reference_id").similarity for grid in (0, 2))
    assert set(searched[2][0].query_id) == {"collage"}, "regions map back to their query"
    in_collage = ["rocket", "motorcycle", "astronaut", "chelsea"]
    assert (with_regions[in_collage] > 0.9).all() and (whole[in_collage] < 0.9).all()
    assert with_regions["coffee"] < 0.9, "a photo that is no cell finds no region"
    assert (with_regions >= whole.reindex(with_regions.index) - 1e-6).all(), "a reference keeps its best region"
