"""The training prompt of the MediX-R1 release (spec section 2), verbatim."""

from __future__ import annotations

# Three lines end with a trailing space, as released: after "<GRAPHICS>,", "<FUNDUS_PHOTOGRAPHY>," and "Question:".
MEDIX_PROMPT_HEAD = (
    "You are a Medical AI Assistant with advanced reasoning capabilities\n"
    "Your task:\n"
    "1. First output the image modality tag from this set:\n"
    "   <X_RAY>, <MICROSCOPY>, <CLINICAL_PHOTOGRAPHY>, <CT_SCAN>, <GRAPHICS>, \n"
    "   <ANGIOGRAPHY>, <PET_SCAN>, <ULTRASOUND>, <MRI_SCAN>, <FUNDUS_PHOTOGRAPHY>, \n"
    "   <OCT_SCAN>, <ENDOSCOPY>, <MAMMOGRAPHY>, <FLUOROSCOPY>, <OTHER>, <SPECT>\n"
    "   (Only output the tag, nothing else.)\n"
    "2. Then output the thinking and medical reasoning process in <thinking>...</thinking>tags.\n"
    "3. Finally, provide the correct answer inside <answer>...</answer> tags.\n"
    "4. Do not include any extra information or text outside of these tags.\n"
    "Question: \n"
)
IMAGE_PLACEHOLDER = "<image>"


def medix_prompt(problem: str, num_images: int) -> str:
    """The user turn: the template, one ``<image>`` per image, then the trimmed problem.

    >>> medix_prompt("  What is shown? ", 1).splitlines()[-1]
    '<image>What is shown?'
    >>> medix_prompt("Q", 0).endswith("Question: \\nQ")
    True
    """
    return MEDIX_PROMPT_HEAD + IMAGE_PLACEHOLDER * num_images + problem.strip()
