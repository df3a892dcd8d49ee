"""Face tracking on real photos and clips: the right face, stable landmarks, no face where none is."""


import numpy as np

from edge_retalk.face.landmarks import LIPS, face_height
from edge_retalk.io.media import iter_video_frames, read_image
from edge_retalk.face.tracker import FaceDetector, FaceTracker


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
