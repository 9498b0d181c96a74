"""The tracker (DINO-Tracker), by stage. Read top to bottom: shot -> preprocess -> train -> infer.

Everything inside is in WORKING pixels (the network raster, pixel-centre convention: the first pixel's
centre is (0, 0), origin top-left, y down); :class:`~dino_tracker_vfx.coords.Resize` converts to plate px
at the API boundary only.

    api.py         track() / ShotTracker: runs the stages below, caches them, returns plate-px tracks
    predictor.py   track_arrays(): frames uint8 [T, H, W, 3] + queries [N, 3] (t, x, y) -> arrays
    config.py      the settings schema (paper defaults) and the settings hash of each cached stage
    presets.py     named YAML presets (presets/*.yaml) and user preset files
    cache.py       per-shot cache of stage arrays and training checkpoints

    preprocess/    everything computed from the frames before training
        flow.py          consecutive-frame optical flow (OpenCV DIS / torchvision RAFT), FlowField
        tracklets.py     dense chained-flow tracklets -> training correspondences
        backbones.py     DINOv2 ViT-S/B/L/G with a configurable patch stride
        weights.py       finding, downloading and verifying DINOv2 / RAFT weight files
        foreground.py    foreground masks (user masks, DINO saliency, or all)
        best_buddies.py  mutual nearest neighbours of DINO features (training pairs)
        stages.py        each preprocessing stage as cacheable arrays (the only caller of the above)
    model/         what is trained and how it matches
        feature_grid.py  where feature-map cells sit in the working raster
        delta_dino.py    the CNN residual added to frozen DINO features
        refiner.py       the cost-volume refiner
        tracker_model.py features -> cosine cost volume -> refiner -> soft-argmax
    train/         test-time training
        trainer.py       the training loop and checkpoints' contents
        losses.py        flow, best-buddy, cycle and prior losses
        sampling.py      minibatch sampling of correspondences and frame sets
        quota.py         the foreground quota shared by the samplers
    infer/         tracks and visibility from the trained model
        inference.py     feature store and batched point tracking
        occlusion.py     occlusion by trajectory agreement (the paper's rule)
        chain.py         points chained through consecutive flows (also the ``flow`` baseline)
        flow_guided.py   flow-guided positions and visibility (the weight-free preview)
        drift.py         drift correction of chained flow by direct flow from the query frame
"""
