"""Tracker internals (working-resolution pixels, pixel-centre convention; see each module).

    flow.py          optical flow (OpenCV DIS / torchvision RAFT), FlowField, chain_points (flow baseline)
    weights.py       locating, downloading and verifying DINOv2 / RAFT weight files
    backbones.py     DINOv2 ViT-S/B/L/G (/14, register variants) with a configurable patch stride
    tracklets.py     dense chained flow tracklets -> FlowCorrespondences (training pairs)
    best_buddies.py  mutual nearest neighbours of DINO features with NMS-ratio confidence
    foreground.py    foreground masks at working resolution (user masks, DINO saliency, or all)
"""
