from pathlib import Path

import dagster as dg

from kgents_pipeline.dagster_support import with_code_references


@dg.definitions
def defs() -> dg.Definitions:
    # Everything under defs/ is discovered; the one whole-graph addition is the code links.
    return with_code_references(dg.load_from_defs_folder(path_within_project=Path(__file__).parent))
