"""Names in the folders `gcgan sample` and `gcgan export` write, torch-free: the commands' help texts show
them, `synthesis` and `export` (which import torch) write them."""

# a `gcgan sample` folder
SHEET = "contact_sheet.png"
SHEET_MAX = 64  # samples shown on the contact sheet

# a `gcgan export` model folder
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
