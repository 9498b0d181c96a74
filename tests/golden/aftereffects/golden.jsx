// dino_tracker_vfx: one null layer per track in the active composition, Position keyed at
// visible frames (occluded frames have no key). Frame 0 = host frame 1001 = comp time 0.
// Key times: at the comp's frame rate (the track file has no fps).
// Positions: AE layer space of a 1920x1080 plate (top-left, y down, pixel corners: x + 0.5, y + 0.5),
// scaled to the comp size if it differs. Run with File > Scripts > Run Script File.
(function () {
    var comp = app.project.activeItem;
    if (!(comp && comp instanceof CompItem)) {
        alert("dino_tracker_vfx: open or select a composition first");
        return;
    }
    var plate = [1920, 1080];
    var sx = comp.width / plate[0], sy = comp.height / plate[1];
    var frameTime = comp.frameDuration;  // the track file has no fps: the comp's rate
    var tracks = [
        {name: "car_a", frames: [0, 1, 2, 3, 4], xy: [[0.5, 0.5], [10.5, 5.5], [20.5, 10.5], [30.5, 15.5], [40.5, 20.5]]},
        {name: "car_b", frames: [0, 1, 3, 4], xy: [[100.75, 201], [102.75, 200], [106.75, 198], [108.75, 197]]},
        {name: "corner 1", frames: [0, 1, 2, 3, 4], xy: [[1919.5, 1079.5], [1918, 1077], [1916.5, 1074.5], [1915, 1072], [1913.5, 1069.5]]}
    ];
    app.beginUndoGroup("dino_tracker_vfx tracks");
    for (var i = 0; i < tracks.length; i++) {
        var tr = tracks[i];
        var layer = comp.layers.addNull();
        layer.name = tr.name;
        var pos = layer.property("ADBE Transform Group").property("ADBE Position");
        var times = [], values = [];
        for (var k = 0; k < tr.frames.length; k++) {
            times.push(tr.frames[k] * frameTime);
            values.push([tr.xy[k][0] * sx, tr.xy[k][1] * sy]);
        }
        pos.setValuesAtTimes(times, values);
    }
    app.endUndoGroup();
})();
