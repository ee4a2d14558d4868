from pathlib import Path

from setuptools import find_packages, setup

README = Path(__file__).with_name("README.md")

setup(
    name="medix-verl",
    version="0.1.0",
    description="MediX-R1 (open-ended RL for medical vision-language models) on verl 0.9.x",
    long_description=README.read_text(encoding="utf-8") if README.exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(
        include=["medix_verl", "medix_verl.*", "reward_fns", "reward_fns.*", "data_prep", "data_prep.*"]
    ),
    include_package_data=True,
    package_data={"medix_verl": ["integration/config/*.yaml", "reward/data/*.jsonl"]},
    install_requires=[
        "verl==0.9.1",
        # what verl's default (v1) trainer imports but its base requirements omit
        "cachetools",
        "fastapi",
        "uvicorn",
        "pyzmq",
        "msgspec",
        "TransferQueue>=0.1.10",
        "aiohttp>=3.9",
        "numpy>=2.0",
        "pyarrow>=19.0",
        "pillow>=10.0",
        "sentence-transformers>=3.0",
        "scikit-learn",
        "filelock",
        "qwen-vl-utils",
        "tqdm",
        # medix-verl eval plots its results (eval/reports.py); verl and vLLM do not pull it in
        "matplotlib",
    ],
    extras_require={
        # A GPU node: vLLM and torch as verl's own `vllm` extra pins them. flash-attn is a second
        # step (recipes/install_gpu.sh): its setup imports torch, so it cannot build in this resolution.
        "gpu": ["verl[vllm]==0.9.1"],
        "test": ["pytest>=8", "pytest-xdist>=3.6", "hypothesis>=6", "tiktoken", "gguf", "ruff==0.17.6"],
    },
    entry_points={
        "console_scripts": ["medix-verl=medix_verl.cli:main"],
        "verl.plugins": ["medix_verl=medix_verl.integration.plugin"],
    },
)
