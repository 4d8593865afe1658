"""The fixed choices and defaults options offer, free of torch so the command line can state them at once.

Each name is defined here and only here; the modules that act on a choice import it from this file.
"""

OPS_RULES = ("bits", "bnext-paper")  # how a non-binary MAC counts (complexity.flops_per_mac)
AUGMENTATIONS = ("cifar", "flip", "bnext", "none")  # per-image training augmentation (data.train_transform)
DATA_MODES = ("auto", "memory", "stream")  # how an image folder is read (data.open_data)
PRECISIONS = ("fp32", "bf16")  # arithmetic of training forward passes (train.fast.autocast); fp16 would need loss scaling
# The reference implementations a released checkpoint fits (models.checkpoint): "float" is src/bnext.py,
# full-precision stem, SE and classifier (the file the training script imports); "quant" is src/bnext_quant.py
# with quant=True and se_bits=8: 8-bit stem, SE and classifier.
REFERENCE_VARIANTS = ("float", "quant")
REPORT_FORMATS = ("md", "csv", "json", "html")  # what `bnextbench report` writes
MODEL_RESOLUTION = 224  # input side in pixels at which models are counted when none is given (ImageNet's)
