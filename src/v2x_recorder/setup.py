from setuptools import find_packages, setup

package_name = 'v2x_recorder'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='V2X Alerts Maintainers',
    maintainer_email='maintainers@v2x-alerts.dev',
    description='Ring-buffer recording of the RSU camera and evidence clips around events.',
    license='AGPL-3.0-only',
    entry_points={
        'console_scripts': [
            'segment_recorder = v2x_recorder.segment_recorder:main',
            'event_clipper = v2x_recorder.event_clipper:main',
            'v2x_make_clip = v2x_recorder.v2x_make_clip:main',
            'v2x_verify_evidence = v2x_recorder.v2x_verify_evidence:main',
            'v2x_hold_evidence = v2x_recorder.v2x_hold_evidence:main',
            'v2x_export_evidence = v2x_recorder.v2x_export_evidence:main',
        ],
    },
)
