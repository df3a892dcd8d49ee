"""Face tracking on real photos and clips: the right face, stable landmarks, no face where none is."""


import numpy as np

from edge_retalk.face.landmarks import LIPS, face_height
from edge_retalk.io.media import iter_video_frames, read_image
from edge_retalk.face.tracker import FaceDetector, FaceTracker
from edge_retalk.face.sources import tracked


def test_photo_landmarks_sit_on_the_face(data):
    image = read_image(data / "portraits" / "photo_astronaut.png")
    points = FaceTracker(25.0)(image)
    assert points is not None and points.shape == (468, 3)
    lips = points[list(LIPS), :2]
    assert 200 < lips[:, 0].mean() < 250 and 125 < lips[:, 1].mean() < 165
    assert 80 < face_height(points) < 140


def test_no_face_in_a_cat(data):
    assert FaceTracker(25.0)(read_image(data / "portraits" / "nonhuman_chelsea.png")) is None


def test_largest_of_several_faces_is_used(data):
    image = read_image(data / "portraits" / "multiface_two_people.jpg")
    faces = FaceDetector().detect(image)
    assert len(faces) == 2 and faces[0].area >= faces[1].area
    points = FaceTracker(25.0)(image)
    centre = faces[0].box[:2] + faces[0].box[2:] / 2
    assert np.linalg.norm(points[:, :2].mean(axis=0) - centre) < faces[0].box[2]


def test_still_face_gives_a_still_mouth(data):
    image = read_image(data / "portraits" / "photo_einstein.png")
    tracker = FaceTracker(25.0)
    lips = np.stack([tracker(image)[list(LIPS), :2] for _ in range(20)])
    assert np.abs(lips[-5:] - lips[-1]).max() < 0.5


def test_face_less_stretch_is_reported_as_no_face(data):
    tracker = FaceTracker(30.0)
    found = [tracker(frame) is not None for frame in iter_video_frames(data / "clips" / "wav2lip_test_mov_23s.mov")]
    missing = len(found) - sum(found)
    assert 60 < missing < 200, missing
    assert all(found[:30]) and all(found[-30:])


def test_tracking_every_other_frame_interpolates_close_to_tracking_each(data):
    """Landmarks found on every 2nd frame and interpolated between stay within a fraction of a
    percent of the face height of tracking every frame, on a clip of a moving head."""
    frames = list(iter_video_frames(data / "clips" / "lrs2_00024.mp4"))[:41]
    each = list(tracked(frames, FaceTracker(25.0)))
    other = list(tracked(frames, FaceTracker(12.5), 2))
    assert all(a[0] is b[0] is frame for a, b, frame in zip(each, other, frames)) and len(other) == len(frames)
    errors = [np.abs(a[:, :2] - b[:, :2]).mean() / face_height(a) for (_, a), (_, b) in zip(each, other)]
    assert np.median(errors) < 0.006 and max(errors) < 0.03
    held = [np.abs(a[:, :2] - b[:, :2]).mean() / face_height(a) for (_, a), (_, b) in zip(each[1::2], other[0::2])]
    assert np.median(errors[1::2]) < np.median(held), "interpolating is closer than holding the keyframe before"


def test_frames_beside_a_keyframe_without_a_face_are_tracked_themselves(data):
    """Where one keyframe shows no face, the frames between it and the next are tracked on their
    own (the face may come or go there); the last frame is always tracked."""
    frames = list(iter_video_frames(data / "clips" / "lrs2_00024.mp4"))[:4]
    blank = np.zeros_like(frames[0])
    found = [points is not None for _, points in tracked([frames[0], frames[1], blank, frames[3]],
                                                          FaceTracker(12.5), 2)]
    assert found == [True, True, False, True]
    found = [points is not None for _, points in tracked([blank, frames[1], frames[2], blank, blank],
                                                          FaceTracker(12.5), 2)]
    assert found == [False, True, True, False, False]
