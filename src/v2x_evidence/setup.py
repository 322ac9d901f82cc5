from setuptools import find_packages, setup

package_name = 'v2x_evidence'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='V2X Alerts Maintainers',
    maintainer_email='maintainers@v2x-alerts.dev',
    description='v2x_evidence: signed, hash-chained evidence of the clip archive.',
    license='AGPL-3.0-only',
)
